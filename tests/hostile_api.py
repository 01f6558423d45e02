"""A deliberately hostile stand-in of SignalWire's room sessions API, for issue 9's tests.

Unlike etl/fake_api.py (which follows the vendor's documented behaviour), this server exists to
misbehave: it speaks HTTP/1.1 by hand over a raw `socketserver` TCP socket on loopback, so that a
response can drip one byte at a time, promise 64 MiB, never end, decompress to a gigabyte, or
carry bytes no JSON encoder would write.

Scripting: each request is answered by a `Behaviour`. For one route (a session id for
`GET /api/video/room_sessions/{id}`, `LIST` for the list, `BY_ID` for every by-id request) a test
queues behaviours with `queue(route, ...)` (each consumed by one authorised request) or sets a
standing one with `always(route, behaviour)`. Lookup order: the id's queue, the BY_ID queue, the
id's standing behaviour, BY_ID's, then `Normal()`, which serves `list_sessions`/`by_id` like the
real API (newest first, `links.next` with a `PA...` token, list-only fields only in the list).

Every request, authorised or not, is recorded (`requests`: path, query, arrival time, headers).
Basic auth is checked like the real API (401 otherwise).

Bounds: every response stops by itself after `max_seconds` or `max_bytes` (whichever first), and
`stop()` hangs up every open connection, so a test that forgets a misbehaving client still ends.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import functools
import hmac
import json
import socket
import socketserver
import struct
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from etl.fake_api import by_id_view

LIST_PATH = "/api/video/room_sessions"
LIST = "list"  # route key of the list endpoint
BY_ID = "by-id"  # route key matching every get-by-id request
MIB = 1 << 20
MAX_HEAD_BYTES = 64 * 1024
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Request:
    """One request as the server read it. `at` is time.monotonic() when its head was read."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    at: float
    authorised: bool
    done: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    @property
    def route(self) -> str | None:
        return route_of(self.path)


def route_of(path: str) -> str | None:
    """LIST, a session id (text after the list path), or None for other paths."""
    if path == LIST_PATH:
        return LIST
    prefix = LIST_PATH + "/"
    if path.startswith(prefix) and "/" not in path[len(prefix) :] and len(path) > len(prefix):
        return path[len(prefix) :]
    return None


# --------------------------------------------------------------------------- connection


class Connection:
    """The socket of one request, with the server's bounds applied to every write."""

    def __init__(self, sock: socket.socket, server: HostileAPI) -> None:
        self.sock = sock
        self.server = server
        self.started = time.monotonic()
        self.sent = 0

    @property
    def deadline(self) -> float:
        return self.started + self.server.max_seconds

    def open(self) -> bool:
        """Whether this response may go on: server running, time and byte caps not reached."""
        return (
            not self.server.stopping.is_set()
            and time.monotonic() < self.deadline
            and self.sent < self.server.max_bytes
        )

    def write(self, data: bytes) -> bool:
        """Send `data`; False when the peer is gone or a bound is reached (then stop writing)."""
        if not self.open():
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.sent += len(data)
        return True

    def pause(self, seconds: float) -> bool:
        """Wait (interruptible by stop()); False when the response must end."""
        self.server.stopping.wait(min(seconds, max(0.0, self.deadline - time.monotonic())))
        return self.open()

    def head(self, status: int, headers: Iterable[tuple[str, str]]) -> bool:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Whatever')}"]
        names = set()
        for name, value in headers:
            lines.append(f"{name}: {value}")
            names.add(name.lower())
        if "date" not in names:
            lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
        if "connection" not in names:
            lines.append("Connection: close")
        return self.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


# --------------------------------------------------------------------------- behaviours


class Behaviour:
    """How to answer one request. Subclasses write the whole response on `conn`."""

    def respond(self, conn: Connection, request: Request) -> None:
        raise NotImplementedError


def _json_headers(
    length: int | None, extra: Iterable[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    headers = [("Content-Type", "application/json")]
    if length is not None:
        headers.append(("Content-Length", str(length)))
    headers.extend(extra)
    return headers


@dataclass
class Raw(Behaviour):
    """A complete response with exactly these body bytes (and optional extra headers)."""

    body: bytes
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()

    def respond(self, conn: Connection, request: Request) -> None:
        if conn.head(self.status, _json_headers(len(self.body), self.headers)):
            conn.write(self.body)


@dataclass
class Status(Behaviour):
    """An error status with a small JSON body: 429 storms (`retry_after` as text, seconds or an
    HTTP date, see `http_date`), 503s, 400s."""

    status: int
    retry_after: str | None = None

    def respond(self, conn: Connection, request: Request) -> None:
        extra = [] if self.retry_after is None else [("Retry-After", self.retry_after)]
        body = json.dumps({"error": REASONS.get(self.status, "error")}).encode()
        Raw(body, self.status, tuple(extra)).respond(conn, request)


@dataclass
class Drip(Behaviour):
    """Headers at once, then the body one byte every `interval` seconds (until a bound)."""

    body: bytes
    interval: float = 0.2

    def respond(self, conn: Connection, request: Request) -> None:
        if not conn.head(200, _json_headers(len(self.body))):
            return
        for i in range(len(self.body)):
            if not conn.write(self.body[i : i + 1]) or not conn.pause(self.interval):
                return


@dataclass
class Endless(Behaviour):
    """`Transfer-Encoding: chunked` that never ends: a JSON prefix, then spaces inside a string,
    chunk after chunk, until the server's byte or time cap (then a hang-up, no last chunk)."""

    chunk: int = 64 * 1024

    def respond(self, conn: Connection, request: Request) -> None:
        if not conn.head(200, [*_json_headers(None), ("Transfer-Encoding", "chunked")]):
            return
        prefix = b'{"id": "x", "name": "'
        conn.write(b"%x\r\n%s\r\n" % (len(prefix), prefix))
        data = b"%x\r\n%s\r\n" % (self.chunk, b" " * self.chunk)
        while conn.write(data):
            pass


@dataclass
class Oversized(Behaviour):
    """A Content-Length of `size` bytes (default 64 MiB), actually sent (up to the caps): a valid
    session body padded with leading whitespace, so only its size is wrong."""

    body: bytes
    size: int = 64 * MIB

    def respond(self, conn: Connection, request: Request) -> None:
        size = max(self.size, len(self.body))
        if not conn.head(200, _json_headers(size)):
            return
        pad = size - len(self.body)
        block = b" " * MIB
        while pad > 0:
            if not conn.write(block[: min(pad, MIB)]):
                return
            pad -= min(pad, MIB)
        conn.write(self.body)


@dataclass
class Bomb(Behaviour):
    """A compressed body (`encoding` "gzip" or "deflate") that is small on the wire and inflates
    to `inflated` bytes of leading whitespace followed by `body` (valid JSON when inflated)."""

    body: bytes
    encoding: str = "gzip"
    inflated: int = 1 << 30

    def respond(self, conn: Connection, request: Request) -> None:
        wire = compression_bomb(self.body, self.encoding, self.inflated)
        extra = (("Content-Encoding", self.encoding),)
        if conn.head(200, _json_headers(len(wire), extra)):
            conn.write(wire)


@dataclass
class Gate(Behaviour):
    """Hold the request until `event` is set (bounded by the server's caps), then answer it
    with `then` (default: Normal)."""

    event: threading.Event
    then: Behaviour | None = None
    arrived: threading.Event = field(default_factory=threading.Event)

    def respond(self, conn: Connection, request: Request) -> None:
        self.arrived.set()
        while not self.event.is_set():
            if not conn.pause(0.05):
                return
        (self.then or Normal()).respond(conn, request)


@dataclass
class EndlessPages(Behaviour):
    """List pages that never run out: each carries a fresh `links.next` token.

    `items` picks each page's data from the page number: `lambda n: []` (empty pages forever),
    `lambda n: same` (the same items forever) or new sessions on every page."""

    items: Callable[[int], list[dict[str, Any]]] = lambda n: []
    served: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(self, conn: Connection, request: Request) -> None:
        with self._lock:
            self.served += 1
            number = self.served
        token = "PA" + uuid.uuid4().hex
        page = {
            "links": {
                "self": request.path + (f"?{request.query}" if request.query else ""),
                "first": f"{LIST_PATH}?page_size=1000",
                "next": f"{LIST_PATH}?page_number={number}&page_size=1000&page_token={token}",
            },
            "data": self.items(number),
        }
        Raw(json.dumps(page).encode()).respond(conn, request)


@dataclass
class ScriptedPages(Behaviour):
    """List pages chosen by the request's `page_token` ("" for the first page): each token's
    items and the raw `links.next` to send with them -- any JSON value, so a test can send a
    `next` that loops back or is not a string; `None` sends no `next` (the end). A dict instead
    of the pair is sent as the whole body."""

    pages: Mapping[str, tuple[list[dict[str, Any]], Any] | dict[str, Any]]

    def respond(self, conn: Connection, request: Request) -> None:
        token = parse_qs(request.query).get("page_token", [""])[0]
        page = self.pages.get(token, ([], None))
        if isinstance(page, dict):
            body = page
        else:
            items, next_link = page
            body = {"links": {"self": f"{request.path}?{request.query}"}, "data": items}
            if next_link is not None:
                body["links"]["next"] = next_link
        Raw(json.dumps(body).encode()).respond(conn, request)


class Normal(Behaviour):
    """What the real API would answer: the session by id (404 if unknown) or a list page."""

    def respond(self, conn: Connection, request: Request) -> None:
        server = conn.server
        route = request.route
        if route == LIST:
            Raw(server.list_page(request.query)).respond(conn, request)
            return
        session = server.by_id.get(str(route))
        if session is None:
            Status(404).respond(conn, request)
            return
        Raw(json.dumps(by_id_view(session)).encode()).respond(conn, request)


# --------------------------------------------------------------------------- bodies


def http_date(moment: datetime) -> str:
    """An HTTP date (for `Retry-After` or `Date`)."""
    return email.utils.format_datetime(moment, usegmt=True)


def session_body(session: Mapping[str, Any], **raw_fields: str) -> bytes:
    """The by-id JSON of `session` with some values replaced by raw JSON text, e.g.
    `name='"\\\\ud800"'` (a lone surrogate escape) or `extra="1e999"`."""
    view: dict[str, Any] = dict(by_id_view(session))
    markers = {}
    for name, text in raw_fields.items():
        marker = f"@@raw-{uuid.uuid4().hex}@@"
        view[name] = marker
        markers[json.dumps(marker)] = text
    body = json.dumps(view)
    for marker, text in markers.items():
        body = body.replace(marker, text)
    return body.encode("utf-8", "surrogatepass")


def nested_array(depth: int) -> str:
    return "[" * depth + "]" * depth


@functools.cache
def _deflate_parts(tail: bytes) -> tuple[bytes, bytes, bytes]:
    """(raw deflate of 1 MiB of spaces after a full flush, of the tail, its end): the same
    compressed block repeats for every further MiB of spaces, so a gigabyte costs one MiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(b" " * MIB) + compressor.flush(zlib.Z_FULL_FLUSH)
    second = compressor.compress(b" " * MIB) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert first == second, "a full flush should make every MiB of spaces compress the same"
    return second, compressor.compress(tail), compressor.flush()


@functools.cache
def compression_bomb(tail: bytes, encoding: str, inflated: int) -> bytes:
    """A gzip or zlib ("deflate") stream inflating to `inflated` bytes (rounded down to whole
    MiB) of spaces followed by `tail`; built without ever holding the inflated bytes."""
    block, tail_deflated, end = _deflate_parts(tail)
    blocks = max(1, inflated // MIB)
    deflated = block * blocks + tail_deflated + end
    spaces = b" " * MIB
    if encoding == "gzip":
        crc = 0
        for _ in range(blocks):
            crc = zlib.crc32(spaces, crc)
        crc = zlib.crc32(tail, crc)
        size = (blocks * MIB + len(tail)) & 0xFFFFFFFF
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        return header + deflated + struct.pack("<II", crc, size)
    if encoding == "deflate":
        adler = 1
        for _ in range(blocks):
            adler = zlib.adler32(spaces, adler)
        adler = zlib.adler32(tail, adler)
        return b"\x78\xda" + deflated + struct.pack(">I", adler)
    raise ValueError(f"unknown encoding {encoding!r}")


# --------------------------------------------------------------------------- server


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        api = self.server.api
        sock: socket.socket = self.request
        api._track(sock, add=True)
        try:
            sock.settimeout(api.max_seconds)
            head = _read_head(sock)
            if head is None:
                return
            request = api._parse(head)
            if request is None:
                return
            conn = Connection(sock, api)
            try:
                api._dispatch(conn, request)
                _await_hang_up(sock, conn)
            finally:
                request.done.set()
        except OSError:
            return
        finally:
            api._track(sock, add=False)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _await_hang_up(sock: socket.socket, conn: Connection) -> None:
    """After the response, wait (bounded) for the client to close its end, so that
    `Request.done` means "the client has read the whole answer and let go of it"."""
    try:
        sock.shutdown(socket.SHUT_WR)
        while conn.open():
            sock.settimeout(max(0.01, min(0.2, conn.deadline - time.monotonic())))
            try:
                if not sock.recv(4096):
                    return
            except TimeoutError:
                continue
    except OSError:
        return


def _read_head(sock: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD_BYTES:
            return None
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0]


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: HostileAPI) -> None:
        self.api = api
        super().__init__(address, _Handler)


class HostileAPI:
    """The server; `with HostileAPI(sessions, project_id=..., token=...) as api: api.base_url`."""

    def __init__(
        self,
        sessions: Iterable[dict[str, Any]] = (),
        *,
        project_id: str = "test-project",
        token: str = "test-token",
        max_seconds: float = 20.0,
        max_bytes: int = 512 * MIB,
    ) -> None:
        self.project_id = project_id
        self.token = token
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self.list_sessions: list[dict[str, Any]] = []
        self.by_id: dict[str, dict[str, Any]] = {}
        self.set_sessions(sessions)
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Behaviour]] = {}
        self._always: dict[str, Behaviour] = {}
        self._open: set[socket.socket] = set()
        self._tokens: dict[str, int] = {}
        self._server: _TCPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- lifecycle

    def start(self) -> HostileAPI:
        self._server = _TCPServer(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop serving and hang up every open connection (misbehaving ones included)."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HostileAPI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------- scripting

    def set_sessions(self, sessions: Iterable[dict[str, Any]]) -> None:
        """Serve these sessions (list shape): by id, and as a list newest `created_at` first."""
        items = [dict(s) for s in sessions]
        self.list_sessions = sorted(items, key=lambda s: s["created_at"], reverse=True)
        self.by_id = {str(s["id"]): s for s in items}

    def queue(self, route: str, *behaviours: Behaviour) -> None:
        """Answer the next authorised requests of `route` with these, in order."""
        with self._lock:
            self._queues.setdefault(route, deque()).extend(behaviours)

    def always(self, route: str, behaviour: Behaviour | None) -> None:
        """Answer every request of `route` (once its queue is empty) with `behaviour`;
        None restores normal service."""
        with self._lock:
            if behaviour is None:
                self._always.pop(route, None)
            else:
                self._always[route] = behaviour

    # ------------------------------------------------------------- what happened

    def requests_to(self, route: str) -> list[Request]:
        """Authorised requests to a route (LIST, a session id, or BY_ID for every by-id one)."""
        with self._lock:
            seen = list(self.requests)
        return [
            r
            for r in seen
            if r.authorised
            and (r.route == route or (route == BY_ID and r.route not in (LIST, None)))
        ]

    def requests_after(self, moment: float) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.at > moment]

    # ------------------------------------------------------------- internals

    def _track(self, sock: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._open.add if add else self._open.discard)(sock)

    def _parse(self, head: bytes) -> Request | None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return None
        method, target, _version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        split = urlsplit(target)
        request = Request(
            method=method,
            path=split.path,
            query=split.query,
            headers=headers,
            at=time.monotonic(),
            authorised=self._authorised(headers.get("authorization")),
        )
        with self._lock:
            self.requests.append(request)
        return request

    def _authorised(self, header: str | None) -> bool:
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(decoded, f"{self.project_id}:{self.token}".encode())

    def _behaviour(self, route: str) -> Behaviour:
        with self._lock:
            keys = [route] if route == LIST else [route, BY_ID]
            for key in keys:
                queue = self._queues.get(key)
                if queue:
                    return queue.popleft()
            for key in keys:
                if key in self._always:
                    return self._always[key]
        return Normal()

    def _dispatch(self, conn: Connection, request: Request) -> None:
        if not request.authorised:
            Status(401).respond(conn, request)
            return
        route = request.route
        if route is None or request.method != "GET":
            Status(404).respond(conn, request)
            return
        self._behaviour(route).respond(conn, request)

    def list_page(self, query: str) -> bytes:
        """One page of `list_sessions`, newest first, with a `PA...` token in `links.next`."""
        params = {k: v[0] for k, v in parse_qs(query).items()}
        size = min(max(int(params.get("page_size", "50")), 1), 1000)
        with self._lock:
            offset = self._tokens.get(params.get("page_token", ""), 0)
        page = self.list_sessions[offset : offset + size]
        links = {"self": f"{LIST_PATH}?{query}", "first": f"{LIST_PATH}?page_size={size}"}
        if offset + size < len(self.list_sessions):
            token = "PA" + uuid.uuid4().hex
            with self._lock:
                self._tokens[token] = offset + size
            number = (offset + size) // size
            links["next"] = f"{LIST_PATH}?page_number={number}&page_size={size}&page_token={token}"
        return json.dumps({"links": links, "data": page}).encode()
