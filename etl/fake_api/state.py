"""The stand-in's state and controls: the sessions it serves, scripted faults, request counts."""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import ipaddress
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode

from .data import (
    DEFAULT_PAGE_SIZE,
    LIST_PATH,
    MAX_PAGE_SIZE,
    _newest_first,
    _shuffled,
    by_id_view,
    generate_sessions,
    list_view,
)
from .faults import (
    Fault,
    Response,
    _bad_types,
    _json_bytes,
    error_response,
    parse_fault,
    validation_error,
)
from .server import FILTERS, ListQuery, Server, non_negative_int


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
        on_request: Callable[[str], None] | None = None,
        count_paths: bool = True,
    ) -> None:
        """`on_request(path)` is called as each authorised or not request starts (a benchmark
        records start times with it); `count_paths=False` keeps no per-path counter, for runs of
        millions of distinct ids."""
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
        self.on_request = on_request
        self.count_paths = count_paths
        self.requests: collections.Counter[str] = collections.Counter()
        self.total_requests = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._faults: dict[str, collections.deque[Fault]] = {}
        self._tokens: dict[str, int] = {}
        self._token_for_offset: dict[int, str] = {}
        self._server: Server | None = None
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
        server = Server((self.host, self.port), self)
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

    @property
    def in_flight(self) -> int:
        """Requests the server is handling now (a reply may reach the client just before its
        handler counts it done)."""
        with self._lock:
            return self._in_flight

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.total_requests = 0
            self.max_in_flight = self._in_flight

    def _queue(self, key: str, faults: list[Fault]) -> None:
        with self._lock:
            self._faults.setdefault(key, collections.deque()).extend(faults)

    # ----------------------------------------------------------------- used by the handler
    # (etl.fake_api.server asks these what to answer; tests use the controls above)

    def begin_request(self, path: str) -> None:
        if self.on_request is not None:
            self.on_request(path)
        with self._lock:
            if self.count_paths:
                self.requests[path] += 1
            self.total_requests += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def end_request(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def next_fault(self, route: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(route)
            return queue.popleft() if queue else None

    def authorized(self, header: str | None) -> bool:
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{self.project_id}:{self.token}".encode()
        return hmac.compare_digest(decoded, expected)

    def normal_response(self, route: str, path: str, query: str) -> Response:
        if route == LIST_PATH:
            return self._list_response(path, query, bad_types=False)
        session = self.sessions.get(route)
        if session is None:
            return error_response(404)
        return Response(200, _json_bytes(by_id_view(session)))

    def altered_response(self, route: str, path: str, query: str, fault: Fault) -> Response:
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
        page = [list_view(s) for s in matching[parsed.offset : parsed.offset + parsed.page_size]]
        if bad_types and page:
            page = [_bad_types(page[0]), *page[1:]]
        links = self._links(path, query, parsed, total=len(matching))
        return Response(200, _json_bytes({"links": links, "data": page}))

    def _parse_list_query(self, query: str) -> ListQuery | Response:
        params = {key: values[0] for key, values in parse_qs(query, keep_blank_values=True).items()}
        page_size = non_negative_int(params.get("page_size", str(DEFAULT_PAGE_SIZE)))
        if page_size is None or not 1 <= page_size <= MAX_PAGE_SIZE:
            message = f"page_size must be between 1 and {MAX_PAGE_SIZE}"
            return validation_error(message, "page_size")
        page_number = non_negative_int(params.get("page_number", "0"))
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
        filters = tuple((field, params[name]) for name, field in FILTERS if name in params)
        return ListQuery(page_size, offset, filters)

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

    def _links(self, path: str, query: str, parsed: ListQuery, total: int) -> dict[str, str]:
        size = parsed.page_size
        names = {field: name for name, field in FILTERS}
        filters: list[tuple[str, str | int]] = [
            (names[field], value) for field, value in parsed.filters
        ]
        self_link = path + (f"?{query}" if query else "")
        links = {
            "self": self.base_url + self_link if self.absolute_links else self_link,
            "first": self._link([("page_size", size), *filters]),
        }
        if parsed.offset + size < total:
            after = parsed.offset + size
            token = self._page_token(after)
            params: list[tuple[str, str | int]] = [
                ("page_number", after // size),
                ("page_size", size),
                ("page_token", token),
            ]
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
