"""The HTTP/1.1 server and request handler: sockets, routing and bytes on the wire.

The handler asks the stand-in's state (`FakeSignalWire` in etl.fake_api.state, seen here through
the `StandInState` protocol) what to answer."""

from __future__ import annotations

import contextlib
import functools
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, cast

from .data import LIST_PATH, LOGS_PATH, RECORDINGS_PATH, ROOMS_PATH, SESSION_CHILDREN
from .faults import Fault, Response, error_response, fault_response


class StandInState(Protocol):
    """What the handler asks of the stand-in's state (etl.fake_api.state.FakeSignalWire); a
    protocol here, so that the state imports the server and never the other way round."""

    latency: float

    def begin_request(self, path: str) -> None: ...
    def end_request(self) -> None: ...
    def authorized(self, header: str | None) -> bool: ...
    def next_fault(self, route: str) -> Fault | None: ...
    def normal_response(self, route: str, path: str, query: str) -> Response: ...
    def altered_response(self, route: str, path: str, query: str, fault: Fault) -> Response: ...


MAX_DRAINED_BODY = 1 << 20

# --------------------------------------------------------------------------- the server


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], fake: StandInState) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, Handler)

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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 120
    error_content_type = "application/json"
    error_message_format = '{"error": "%(message)s"}'

    @property
    def fake(self) -> StandInState:
        return cast(Server, self.server).fake

    def setup(self) -> None:
        super().setup()
        server = cast(Server, self.server)
        with server.connections_lock:
            server.connections.add(self.connection)

    def finish(self) -> None:
        server = cast(Server, self.server)
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
        fake.begin_request(path)
        try:
            self._drain_body()
            if fake.latency > 0:
                time.sleep(fake.latency)
            if not allowed:
                self._send(error_response(405, (("Allow", "GET"),)))
            else:
                self._serve_get()
        finally:
            fake.end_request()

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
        if not fake.authorized(self.headers.get("Authorization")):
            self._send(error_response(401, (("WWW-Authenticate", 'Basic realm="SignalWire"'),)))
            return
        route = _route(path)
        if route is None:
            self._send(error_response(404))
            return
        fault = fake.next_fault(route)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
            fault = None
        if fault is None:
            self._send(fake.normal_response(route, path, query))
        elif fault.kind == "status":
            self._send(fault_response(fault))
        elif fault.kind == "reset":
            self._reset()
        elif fault.kind == "badjson":
            self._send(Response(200, b'{"id": "abc'))
        elif fault.kind == "truncate":
            self._truncate(fake.normal_response(route, path, query))
        else:
            self._send(fake.altered_response(route, path, query, fault))

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


COLLECTIONS = (ROOMS_PATH, RECORDINGS_PATH, LOGS_PATH)


def _route(path: str) -> str | None:
    """The key of a path the stand-in serves (faults are scripted per key), None for others.

    LIST_PATH for the session list, the session id for a session by id, and the path itself for
    every other endpoint: a session's members and recordings, and rooms, recordings and logs,
    listed or by id.
    """
    if path == LIST_PATH or path in COLLECTIONS:
        return path
    for base in (LIST_PATH, *COLLECTIONS):
        prefix = base + "/"
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        if len(parts) == 1 and parts[0]:
            return parts[0] if base == LIST_PATH else path
        if base == LIST_PATH and len(parts) == 2 and parts[0] and parts[1] in SESSION_CHILDREN:
            return path
        return None
    return None


@dataclass(frozen=True)
class ListQuery:
    page_size: int
    offset: int
    filters: tuple[tuple[str, str], ...]
    carry: tuple[tuple[str, str], ...] = ()  # query parameters every page link repeats


FILTERS: tuple[tuple[str, str], ...] = (
    ("room_id", "room_id"),
    ("room_name", "name"),
    ("status", "status"),
)


def non_negative_int(value: str) -> int | None:
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 0 else None
