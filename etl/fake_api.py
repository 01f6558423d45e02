"""A local stand-in of SignalWire's Video REST API, for tests and benchmarks.

A real HTTP/1.1 server on loopback (standard library only) that follows the vendor's documented
behaviour for room sessions (see /work/shared/api/NOTES.md): Basic auth, get-by-id without the
three list-only fields, a paged list whose `links.next` carries an opaque `PA...` token, 422
bodies in the `errors` shape. Faults can be scripted per session id or for the list endpoint so
that retry and error handling can be exercised over a real socket.

Run standalone for benchmarks:
    python -m etl.fake_api --port 8080 --sessions 1000 --latency-ms 100 --project-id p --token t
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import email.utils
import functools
import hashlib
import hmac
import ipaddress
import json
import random
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, urlencode

LIST_ONLY_FIELDS: tuple[str, ...] = ("cost_in_dollars", "enable_room_previews", "locked_cover")

LIST_PATH = "/api/video/room_sessions"
DEFAULT_NOW = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
ERROR_DOCS_URL = "https://developer.signalwire.com/rest/signalwire-rest/overview/error-codes"
MAX_DRAINED_BODY = 1 << 20

_ROOMS: tuple[tuple[str, str], ...] = (
    ("standup", "Daily Stand-up"),
    ("all-hands", "All Hands"),
    ("sales-demo", "Sales Demo"),
    ("support-desk", "Support Desk"),
    ("design-review", "Design Review"),
    ("office-hours", "Office Hours"),
    ("retro", "Rétrospective d'équipe"),
    ("town-hall", "Town Hall — Q4"),
    ("webinar", 'Webinar: "Launch" 🚀'),
    ("kundentermin", "Kundentermin München"),
)
_LAYOUTS = ("grid-responsive", "grid-responsive-mobile", "highlight-1-responsive", "2x2", "5up")
_MAX_MEMBERS = (None, 5, 10, 20, 50, 100)
# One cycle of session kinds: 17 completed, 2 in progress, 1 with a null status (85/10/5 %).
# The odd ones sit early in the cycle so that even small samples contain each kind.
_KIND_CYCLE: tuple[str, ...] = tuple(
    "in-progress" if i in (3, 13) else "null" if i == 9 else "completed" for i in range(20)
)


# --------------------------------------------------------------------------- data generation


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _truncate(moment: datetime, millis: bool) -> datetime:
    """Drop precision the wire format will not carry, so durations match the strings."""
    micro = moment.microsecond // 1000 * 1000 if millis else 0
    return moment.replace(microsecond=micro)


def _iso(moment: datetime) -> str:
    """ISO 8601 UTC with 'Z'; milliseconds only when the moment has any."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def _maybe(rng: random.Random, probability: float, value: Any) -> Any:
    """`value` with the given probability, else None."""
    return value if rng.random() < probability else None


def _room(rng: random.Random, room_ids: Mapping[str, str]) -> tuple[str | None, str, str | None]:
    """(room_id, name, display_name); ~10% are auto-created sessions without a room."""
    if rng.random() < 0.1:
        name = f"adhoc-{rng.getrandbits(24):06x}"
        return None, name, name
    name, display = rng.choice(_ROOMS)
    return room_ids[name], name, _maybe(rng, 0.95, display)


def _schedule(
    rng: random.Random, kind: str, now: datetime, millis: bool
) -> tuple[datetime, datetime, datetime | None, datetime]:
    """(created, start, end, updated): in-progress sessions are recent and have no end."""
    if kind == "in-progress":
        created = _truncate(now - timedelta(seconds=rng.uniform(60, 6 * 3600)), millis)
        start = _truncate(created + timedelta(seconds=rng.uniform(0, 30)), millis)
        updated = _truncate(start + timedelta(seconds=rng.uniform(0, 30)), millis)
        return created, start, None, updated
    created = _truncate(now - timedelta(seconds=rng.uniform(4 * 3600, 30 * 86400)), millis)
    start = _truncate(created + timedelta(seconds=rng.uniform(0, 120)), millis)
    end = _truncate(start + timedelta(seconds=rng.uniform(30, 3 * 3600)), millis)
    updated = _truncate(end + timedelta(seconds=rng.uniform(0, 5)), millis)
    return created, start, end, updated


def _optional_time(rng: random.Random, anchor: datetime, probability: float) -> str | None:
    if rng.random() >= probability:
        return None
    return _iso(_truncate(anchor + timedelta(seconds=rng.uniform(-600, 7200)), False))


def _make_session(
    rng: random.Random, kind: str, now: datetime, room_ids: Mapping[str, str]
) -> dict[str, Any]:
    session_id = _uuid4(rng)
    room_id, name, display_name = _room(rng, room_ids)
    created, start, end, updated = _schedule(rng, kind, now, millis=rng.random() < 0.5)
    duration = None if end is None else int((end - start).total_seconds())
    previews = rng.random() < 0.3
    cost = None if duration is None else round(duration / 60 * 0.004 * rng.randint(1, 12), 4)
    return {
        "id": session_id,
        "room_id": room_id,
        "name": name,
        "display_name": display_name,
        "max_members": rng.choice(_MAX_MEMBERS),
        "quality": rng.choice(("720p", "1080p")),
        "fps": rng.choice((20, 30)),
        "join_from": _optional_time(rng, created, 0.2),
        "join_until": _optional_time(rng, created, 0.2),
        "remove_at": _optional_time(rng, created, 0.1),
        "remove_after_seconds_elapsed": _maybe(rng, 0.15, rng.choice((600, 1800, 3600))),
        "layout": _maybe(rng, 0.9, rng.choice(_LAYOUTS)),
        "record_on_start": rng.random() < 0.2,
        "tone_on_entry_and_exit": rng.random() < 0.7,
        "room_join_video_off": rng.random() < 0.1,
        "user_join_video_off": rng.random() < 0.1,
        "locked": rng.random() < 0.05,
        "start_time": _iso(start),
        "end_time": None if end is None else _iso(end),
        "duration": duration,
        "status": None if kind == "null" else kind,
        "created_at": _iso(created),
        "updated_at": _iso(updated),
        "preview_url": (
            f"https://example.signalwire.com/previews/{session_id}.mp4"
            if previews and kind == "in-progress"
            else None
        ),
        "prioritize_handraise": _maybe(rng, 0.9, rng.random() < 0.5),
        "sync_audio_video": _maybe(rng, 0.9, rng.random() < 0.8),
        "cost_in_dollars": cost,
        "enable_room_previews": previews,
        "locked_cover": rng.choice(("", "https://example.signalwire.com/covers/locked.png")),
    }


def generate_sessions(n: int, seed: int = 0, now: datetime | None = None) -> list[dict[str, Any]]:
    """Deterministic realistic sessions in list shape, newest `created_at` first.

    Every reference-page field plus the three list-only ones. About 85% are completed
    (start/end/duration set, duration == int((end - start).total_seconds())), 10% in progress
    (end_time, duration and cost_in_dollars null) and 5% have a null status (but consistent
    times). Some have no room_id; nullable fields are sometimes null; timestamps are UTC with
    'Z', about half with milliseconds. `created_at` falls in the 30 days before `now`
    (default 2026-11-01T00:00:00Z, so output depends on `n` and `seed` only).
    """
    rng = random.Random(seed)
    moment = DEFAULT_NOW if now is None else now.astimezone(UTC)
    room_ids = {name: _uuid4(rng) for name, _ in _ROOMS}
    kinds = [_KIND_CYCLE[i % len(_KIND_CYCLE)] for i in range(n)]
    rng.shuffle(kinds)
    sessions = [_make_session(rng, kind, moment, room_ids) for kind in kinds]
    return _newest_first(sessions)


def by_id_view(session: Mapping[str, Any]) -> dict[str, Any]:
    """The session as GET /{id} returns it: the list-only fields removed."""
    return {key: value for key, value in session.items() if key not in LIST_ONLY_FIELDS}


@functools.lru_cache(maxsize=65536)
def _parse_time(value: str) -> datetime:
    """Parsed timestamp for ordering; text order is wrong when only some carry milliseconds."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _created(session: Mapping[str, Any]) -> datetime:
    value = session.get("created_at")
    return _parse_time(value) if isinstance(value, str) else datetime.min.replace(tzinfo=UTC)


def _newest_first(sessions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest created_at first, ties by id ascending."""
    by_id = sorted(sessions, key=lambda s: str(s.get("id")))
    return sorted(by_id, key=_created, reverse=True)


def _shuffled(sessions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """An order unrelated to created_at, yet stable between requests so paging stays exact."""
    return sorted(sessions, key=lambda s: hashlib.blake2b(str(s.get("id")).encode()).digest())


# --------------------------------------------------------------------------- faults


_STATUS_FAULTS = frozenset({"401", "403", "422", "429", "500", "502", "503", "504"})
_PLAIN_FAULTS = frozenset({"reset", "badjson", "truncate", "mismatch", "badtypes"})


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour; `kind` is "status", "slow" or one of the plain fault words."""

    kind: str
    status: int = 0
    retry_after: str | None = None
    retry_after_date: float | None = None
    seconds: float = 0.0


def parse_fault(word: str) -> Fault:
    """Parse a fault word; raise ValueError for anything unknown, so typos fail loudly.

    "429:VALUE" sends VALUE verbatim as Retry-After (so "429:0", "429:-5" or "429:soon" can
    test clients against useless hints); "429:date:N" sends an HTTP date N seconds ahead of the
    response (negative N: in the past).
    """
    if word in _STATUS_FAULTS:
        return Fault("status", status=int(word))
    if word in _PLAIN_FAULTS:
        return Fault(word)
    head, _, arg = word.partition(":")
    if head == "slow":
        seconds = float(arg)
        if not seconds >= 0:
            raise ValueError(f"slow fault needs a non-negative number of seconds: {word!r}")
        return Fault("slow", seconds=seconds)
    if head == "429" and arg.startswith("date:"):
        return Fault("status", status=429, retry_after_date=float(arg.removeprefix("date:")))
    if head == "429" and arg.strip() and not any(c in arg for c in "\r\n"):
        return Fault("status", status=429, retry_after=arg)
    raise ValueError(f"unknown fault word: {word!r}")


# --------------------------------------------------------------------------- responses


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def error_response(status: int, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A `{"error": "<reason phrase>"}` body, the shape the vendor specifies for non-422s."""
    if status == 422:
        return validation_error("the request is not valid", None)
    return Response(status, _json_bytes({"error": HTTPStatus(status).phrase}), headers)


def validation_error(message: str, attribute: str | None) -> Response:
    error: dict[str, str] = {
        "type": "validation_error",
        "code": "invalid_parameter",
        "message": message,
    }
    if attribute is not None:
        error["attribute"] = attribute
    error["url"] = f"{ERROR_DOCS_URL}#invalid_parameter"
    return Response(422, _json_bytes({"errors": [error]}))


def _fault_response(fault: Fault) -> Response:
    """The reply for a status fault, with Retry-After when the fault asks for one."""
    headers: tuple[tuple[str, str], ...] = ()
    if fault.retry_after is not None:
        headers = (("Retry-After", fault.retry_after),)
    elif fault.retry_after_date is not None:
        when = datetime.now(UTC).replace(microsecond=0)
        when += timedelta(seconds=fault.retry_after_date)
        headers = (("Retry-After", email.utils.format_datetime(when, usegmt=True)),)
    return error_response(fault.status, headers)


def _bad_types(view: dict[str, Any]) -> dict[str, Any]:
    return {**view, "duration": "long", "locked": "no", "fps": "fast"}


# --------------------------------------------------------------------------- the server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], fake: FakeSignalWire) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup (getfqdn), which can stall."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (timeouts, resets) are normal here; anything else is printed."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Hang up kept-alive connections so their handler threads end with the server."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 120
    error_content_type = "application/json"
    error_message_format = '{"error": "%(message)s"}'

    @property
    def fake(self) -> FakeSignalWire:
        return cast(_Server, self.server).fake

    def setup(self) -> None:
        super().setup()
        server = cast(_Server, self.server)
        with server.connections_lock:
            server.connections.add(self.connection)

    def finish(self) -> None:
        server = cast(_Server, self.server)
        with server.connections_lock:
            server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: benchmarks send thousands of requests a second."""

    def do_GET(self) -> None:
        self._handle(allowed=True)

    def __getattr__(self, name: str) -> Any:
        """Every method but GET gets a 405 (http.server would answer 501 to unknown ones)."""
        if name.startswith("do_"):
            return functools.partial(self._handle, allowed=False)
        raise AttributeError(name)

    def _handle(self, allowed: bool) -> None:
        path = self.path.partition("?")[0]
        fake = self.fake
        fake._begin(path)
        try:
            self._drain_body()
            if fake.latency > 0:
                time.sleep(fake.latency)
            if not allowed:
                self._send(error_response(405, (("Allow", "GET"),)))
            else:
                self._serve_get()
        finally:
            fake._end()

    def _drain_body(self) -> None:
        """Read a request body, if any, so it cannot be taken for the next request."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if 0 <= length <= MAX_DRAINED_BODY:
            if length:
                self.rfile.read(length)
        else:
            self.close_connection = True

    def _serve_get(self) -> None:
        fake = self.fake
        path, _, query = self.path.partition("?")
        if not fake._authorized(self.headers.get("Authorization")):
            self._send(error_response(401, (("WWW-Authenticate", 'Basic realm="SignalWire"'),)))
            return
        route = _route(path)
        if route is None:
            self._send(error_response(404))
            return
        fault = fake._next_fault(route)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
            fault = None
        if fault is None:
            self._send(fake._normal_response(route, path, query))
        elif fault.kind == "status":
            self._send(_fault_response(fault))
        elif fault.kind == "reset":
            self._reset()
        elif fault.kind == "badjson":
            self._send(Response(200, b'{"id": "abc'))
        elif fault.kind == "truncate":
            self._truncate(fake._normal_response(route, path, query))
        else:
            self._send(fake._altered_response(route, path, query, fault))

    def _reset(self) -> None:
        """Hang up without a single byte of response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()

    def _truncate(self, response: Response) -> None:
        """Promise the full body in Content-Length, send half of it, hang up."""
        self.close_connection = True
        self._write_head(response.status, len(response.body), response.headers)
        self._write(response.body[: len(response.body) // 2])

    def _send(self, response: Response) -> None:
        self._write_head(response.status, len(response.body), response.headers)
        if self.command != "HEAD":
            self._write(response.body)

    def _write_head(self, status: int, length: int, headers: Iterable[tuple[str, str]]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length))
        for name, value in headers:
            self.send_header(name, value)
        try:
            self.end_headers()
        except OSError:
            self.close_connection = True

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True


def _route(path: str) -> str | None:
    """LIST_PATH for the list, the session id for get-by-id, None for anything else."""
    if path == LIST_PATH:
        return LIST_PATH
    prefix = LIST_PATH + "/"
    if path.startswith(prefix):
        session_id = path[len(prefix) :]
        if session_id and "/" not in session_id:
            return session_id
    return None


@dataclass(frozen=True)
class _ListQuery:
    page_size: int
    offset: int
    filters: tuple[tuple[str, str], ...]


_FILTERS: tuple[tuple[str, str], ...] = (
    ("room_id", "room_id"),
    ("room_name", "name"),
    ("status", "status"),
)


def _non_negative_int(value: str) -> int | None:
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 0 else None


class FakeSignalWire:
    """The stand-in API server; use `with FakeSignalWire(sessions) as fake: ...fake.base_url`.

    `sessions` (by id, list shape) is read on every request, so tests may mutate it directly.
    Faults scripted with `script`/`script_list` are consumed only by requests that pass auth.
    """

    def __init__(
        self,
        sessions: Iterable[dict[str, Any]] = (),
        *,
        project_id: str = "test-project",
        token: str = "test-token",
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        absolute_links: bool = False,
        shuffle_list: bool = False,
    ) -> None:
        if not ipaddress.IPv4Address(host).is_loopback:
            raise ValueError(f"the fake API serves on IPv4 loopback only, not {host!r}")
        self.sessions: dict[str, dict[str, Any]] = {}
        for session in sessions:
            self.add_session(session)
        self.project_id = project_id
        self.token = token
        self.latency = latency
        self.host = host
        self.port = port
        self.absolute_links = absolute_links
        self.shuffle_list = shuffle_list
        self.requests: collections.Counter[str] = collections.Counter()
        self.total_requests = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._faults: dict[str, collections.deque[Fault]] = {}
        self._tokens: dict[str, int] = {}
        self._token_for_offset: dict[int, str] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        """The server's root, e.g. http://127.0.0.1:54321; known once started."""
        if self._base_url is None:
            raise RuntimeError("the fake API is not started")
        return self._base_url

    def start(self) -> FakeSignalWire:
        """Bind and serve in a background thread.

        The short poll interval bounds how long `stop()` waits for the serving loop to notice;
        tests start and stop a server each, so it adds up.
        """
        if self._server is not None:
            raise RuntimeError("the fake API is already started")
        server = _Server((self.host, self.port), self)
        self._server = server
        self._base_url = f"http://{self.host}:{server.server_port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"fake-signalwire-{server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, hang up open connections, release the port. Safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> FakeSignalWire:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- test controls

    def add_session(self, session: dict[str, Any]) -> None:
        """Store a (shallow) copy, so two fakes fed the same list never share a session."""
        self.sessions[str(session["id"])] = dict(session)

    def script(self, session_id: str, *faults: str) -> None:
        """Queue faults for GET /api/video/room_sessions/{session_id}.

        Each authorised request to that id consumes the next one; when the queue is empty the
        id is served normally (404 if unknown). Words are validated here: typos raise ValueError.
        """
        self._queue(session_id, [parse_fault(word) for word in faults])

    def script_list(self, *faults: str) -> None:
        """Queue faults for the list endpoint; "badtypes" breaks the first item of the page.

        "mismatch" has no meaning for a list and raises ValueError.
        """
        parsed = [parse_fault(word) for word in faults]
        if any(fault.kind == "mismatch" for fault in parsed):
            raise ValueError("the 'mismatch' fault applies to get-by-id only")
        self._queue(LIST_PATH, parsed)

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.total_requests = 0
            self.max_in_flight = self._in_flight

    def _queue(self, key: str, faults: list[Fault]) -> None:
        with self._lock:
            self._faults.setdefault(key, collections.deque()).extend(faults)

    # ----------------------------------------------------------------- used by the handler

    def _begin(self, path: str) -> None:
        with self._lock:
            self.requests[path] += 1
            self.total_requests += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _end(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _next_fault(self, route: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(route)
            return queue.popleft() if queue else None

    def _authorized(self, header: str | None) -> bool:
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{self.project_id}:{self.token}".encode()
        return hmac.compare_digest(decoded, expected)

    def _normal_response(self, route: str, path: str, query: str) -> Response:
        if route == LIST_PATH:
            return self._list_response(path, query, bad_types=False)
        session = self.sessions.get(route)
        if session is None:
            return error_response(404)
        return Response(200, _json_bytes(by_id_view(session)))

    def _altered_response(self, route: str, path: str, query: str, fault: Fault) -> Response:
        """200 with a body that is valid JSON but wrong: "mismatch" or "badtypes"."""
        if route == LIST_PATH:
            return self._list_response(path, query, bad_types=True)
        view = by_id_view(self.sessions.get(route) or _stand_in(route))
        if fault.kind == "mismatch":
            return Response(200, _json_bytes({**view, "id": str(uuid.uuid4())}))
        return Response(200, _json_bytes(_bad_types({**view, "id": route})))

    def _list_response(self, path: str, query: str, *, bad_types: bool) -> Response:
        parsed = self._parse_list_query(query)
        if isinstance(parsed, Response):
            return parsed
        ordered = _shuffled if self.shuffle_list else _newest_first
        matching = ordered(
            s
            for s in list(self.sessions.values())
            if all(s.get(field) == value for field, value in parsed.filters)
        )
        page = matching[parsed.offset : parsed.offset + parsed.page_size]
        if bad_types and page:
            page = [_bad_types(page[0]), *page[1:]]
        links = self._links(path, query, parsed, total=len(matching))
        return Response(200, _json_bytes({"links": links, "data": page}))

    def _parse_list_query(self, query: str) -> _ListQuery | Response:
        params = {key: values[0] for key, values in parse_qs(query, keep_blank_values=True).items()}
        page_size = _non_negative_int(params.get("page_size", str(DEFAULT_PAGE_SIZE)))
        if page_size is None or not 1 <= page_size <= MAX_PAGE_SIZE:
            message = f"page_size must be between 1 and {MAX_PAGE_SIZE}"
            return validation_error(message, "page_size")
        page_number = _non_negative_int(params.get("page_number", "0"))
        if page_number is None:
            return validation_error("page_number must be a non-negative integer", "page_number")
        token = params.get("page_token")
        if token is None:
            if page_number > 0:
                message = "page_token is required when page_number is greater than 0"
                return validation_error(message, "page_token")
            offset = 0
        else:
            with self._lock:
                found = self._tokens.get(token)
            if found is None:
                return validation_error("page_token is invalid or expired", "page_token")
            offset = found
        filters = tuple((field, params[name]) for name, field in _FILTERS if name in params)
        return _ListQuery(page_size, offset, filters)

    def _page_token(self, offset: int) -> str:
        """A random opaque token per offset (reused, so the table stays small)."""
        with self._lock:
            token = self._token_for_offset.get(offset)
            if token is None:
                token = "PA" + uuid.uuid4().hex
                self._token_for_offset[offset] = token
                self._tokens[token] = offset
            return token

    def _link(self, params: Sequence[tuple[str, str | int]]) -> str:
        link = f"{LIST_PATH}?{urlencode(params)}"
        return self.base_url + link if self.absolute_links else link

    def _links(self, path: str, query: str, parsed: _ListQuery, total: int) -> dict[str, str]:
        size = parsed.page_size
        names = {field: name for name, field in _FILTERS}
        filters = [(names[field], value) for field, value in parsed.filters]
        self_link = path + (f"?{query}" if query else "")
        links = {
            "self": self.base_url + self_link if self.absolute_links else self_link,
            "first": self._link([("page_size", size), *filters]),
        }
        if parsed.offset + size < total:
            after = parsed.offset + size
            token = self._page_token(after)
            params = [("page_number", after // size), ("page_size", size), ("page_token", token)]
            links["next"] = self._link([*params, *filters])
        if parsed.offset > 0:
            before = max(0, parsed.offset - size)
            params = [("page_number", before // size), ("page_size", size)]
            if before > 0:
                params.append(("page_token", self._page_token(before)))
            links["prev"] = self._link([*params, *filters])
        return links


def _stand_in(session_id: str) -> dict[str, Any]:
    """A plausible session for faults scripted on an id the fake does not hold."""
    seed = int.from_bytes(hashlib.blake2b(session_id.encode(), digest_size=8).digest(), "big")
    return generate_sessions(1, seed=seed)[0]


# --------------------------------------------------------------------------- standalone


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m etl.fake_api",
        description="Serve a local stand-in of SignalWire's room sessions API until SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="IPv4 loopback address")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--sessions", type=int, default=1000, help="how many to generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every reply")
    parser.add_argument("--project-id", default="test-project")
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--ids-file", type=Path, help="write the generated ids here first")
    parser.add_argument("--absolute-links", action="store_true")
    parser.add_argument("--shuffle-list", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Print base_url on one line, then serve until SIGTERM or SIGINT."""
    args = _parse_args(argv)
    sessions = generate_sessions(args.sessions, seed=args.seed)
    fake = FakeSignalWire(
        sessions,
        project_id=args.project_id,
        token=args.token,
        latency=args.latency_ms / 1000,
        host=args.host,
        port=args.port,
        absolute_links=args.absolute_links,
        shuffle_list=args.shuffle_list,
    )
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with fake:
        if args.ids_file is not None:
            args.ids_file.write_text("".join(f"{s['id']}\n" for s in sessions))
        print(fake.base_url, flush=True)
        while not stopping.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
