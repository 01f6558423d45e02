"""etl/transport.py judged against httpx's own transport: the same hostile servers, both
transports, the same outcome expected (issue 21).

Every test runs twice, once per transport (`kind`: "httpx" is httpx.AsyncHTTPTransport with one
connection, as each lane was before; "lean" is etl.transport.Http11Transport). The servers are
real loopback sockets scripted byte by byte (`ScriptServer`): each accepted connection runs the
next script queued, so a test says exactly what the server sends, when it hangs up, and how
(FIN, half-close or RST). Where the two may differ (bytes after a Content-Length body, a head
just over the size limit, and the inputs where llhttp's strict mode and h11 part ways: see the
section "llhttp"), the test says so and asserts each transport's own outcome.

Bounds: every server socket has a timeout, every script waits at most a few seconds, and
`stop()` hangs up every open connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import ssl
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import trustme
from hostile_api import MIB, compression_bomb

from etl.bodies import BodyTooLargeError
from etl.config import Settings
from etl.errors import TransientError, UnreachableError
from etl.signalwire import SignalWireClient
from etl.transport import MAX_HEAD_BYTES, Http11Transport

pytestmark = pytest.mark.timeout(60)

KINDS = ["httpx", "lean"]
WAIT_S = 5.0  # the longest any script waits for its peer
BODY = b'{"id": "x", "ok": true}'


# --------------------------------------------------------------------------- scripted server


class Peer:
    """The server's side of one connection, for a script."""

    def __init__(self, sock: socket.socket, stopping: threading.Event) -> None:
        self.sock = sock
        self.stopping = stopping
        self._buffer = b""

    def request(self) -> bytes | None:
        """The next request head (None when the client hung up first)."""
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > 256 * 1024:
                return None
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        return head

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def drip(self, data: bytes, interval: float) -> None:
        for i in range(len(data)):
            if self.stopping.wait(interval) or not self.send(data[i : i + 1]):
                return

    def half_close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def reset(self) -> None:
        """Hang up with an RST (SO_LINGER 0), not a FIN."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def hold(self, seconds: float = WAIT_S) -> None:
        """Keep the connection open, silent, until the client hangs up or the test ends."""
        self.sock.settimeout(0.05)
        for _ in range(int(seconds / 0.05)):
            if self.stopping.is_set():
                return
            try:
                if not self.sock.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:
                return


Script = Callable[[Peer], None]


class ScriptServer:
    """A loopback TCP (optionally TLS) server; connection n runs the n-th queued script, or
    `default` once the queue is empty."""

    def __init__(self, tls: ssl.SSLContext | None = None, default: Script | None = None) -> None:
        self.tls = tls
        self.default: Script = default or keep_alive(BODY)
        self.scripts: deque[Script] = deque()
        self.connections = 0
        self.requests = 0
        self.stopping = threading.Event()
        self.closed = threading.Event()  # set by scripts that hang up, for tests to wait on
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}/api/x"

    def queue(self, *scripts: Script) -> None:
        self.scripts.extend(scripts)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                script = self.scripts.popleft() if self.scripts else self.default
                self._open.add(sock)
            threading.Thread(target=self._serve, args=(sock, script), daemon=True).start()

    def _serve(self, sock: socket.socket, script: Script) -> None:
        try:
            sock.settimeout(WAIT_S)
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except (OSError, ssl.SSLError):
                    return
            script(_CountingPeer(sock, self))
        finally:
            with self._lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> ScriptServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._listener.close()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(WAIT_S)


class _CountingPeer(Peer):
    def __init__(self, sock: socket.socket, server: ScriptServer) -> None:
        super().__init__(sock, server.stopping)
        self.server = server

    def request(self) -> bytes | None:
        head = super().request()
        if head is not None:
            self.server.requests += 1
        return head


def response(
    body: bytes = BODY,
    status: bytes = b"200 OK",
    headers: bytes | None = None,
    version: bytes = b"HTTP/1.1",
) -> bytes:
    if headers is None:
        headers = b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return version + b" " + status + b"\r\n" + headers + b"\r\n" + body


def chunked(*pieces: bytes, end: bytes = b"0\r\n\r\n") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + end


def keep_alive(body: bytes) -> Script:
    """Answer every request on the connection with `body` until the client hangs up."""
    return keep_alive_raw(response(body))


def keep_alive_raw(data: bytes) -> Script:
    """Answer every request on the connection with these bytes until the client hangs up."""

    def script(peer: Peer) -> None:
        while peer.request() is not None:
            if not peer.send(data):
                return

    return script


def once(data: bytes, then: str = "hold") -> Script:
    """Read one request, send `data` as is, then: hold, close (FIN), reset, or half-close."""

    def script(peer: Peer) -> None:
        if peer.request() is None:
            return
        peer.send(data)
        finish(peer, then)

    return script


def finish(peer: Peer, how: str) -> None:
    if how == "reset":
        peer.reset()
    elif how == "half-close":
        peer.half_close()
        peer.hold()
    elif how == "hold":
        peer.hold()
    # "close": return; the server closes the socket (FIN)


# --------------------------------------------------------------------------- clients


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_transport(kind: str, ssl_context: ssl.SSLContext | None = None) -> Any:
    context = ssl_context or httpx.create_ssl_context()
    if kind == "httpx":
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        return httpx.AsyncHTTPTransport(verify=context, limits=one)
    return Http11Transport(context)


Outcome = tuple[int, bytes] | type[BaseException]


async def fetch_all(
    transport: httpx.AsyncBaseTransport,
    url: str,
    n: int = 1,
    timeout: httpx.Timeout | float = WAIT_S,
    method: str = "GET",
    between: Callable[[], Any] | None = None,
) -> list[Outcome]:
    """`n` requests in turn on one client: (status, body) or the transport error's class."""
    outcomes: list[Outcome] = []
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
        for i in range(n):
            if i and between is not None:
                await between()
            try:
                reply = await client.request(method, url)
                outcomes.append((reply.status_code, reply.content))
            except httpx.TransportError as exc:
                outcomes.append(type(exc))
    return outcomes


def run(
    kind: str, server: ScriptServer, n: int = 1, **kwargs: Any
) -> list[Outcome]:  # one event loop per call
    ssl_context = kwargs.pop("ssl_context", None)
    return asyncio.run(fetch_all(make_transport(kind, ssl_context), server.url, n, **kwargs))


@pytest.fixture
def server() -> Iterator[ScriptServer]:
    with ScriptServer() as s:
        yield s


OK = (200, BODY)


# --------------------------------------------------------------------------- plain answers


def test_keep_alive_reuses_one_connection(kind: str, server: ScriptServer) -> None:
    assert run(kind, server, n=5) == [OK] * 5
    assert (server.connections, server.requests) == (1, 5)


def test_status_reason_and_headers_come_through(kind: str, server: ScriptServer) -> None:
    head = b"Content-Length: 2\r\nX-One: 1\r\nx-two: two words\r\nRetry-After: 7\r\n"
    server.queue(once(response(b"{}", b"503 Busy Now", head)))

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=make_transport(kind)) as client:
            return await client.get(server.url)

    reply = asyncio.run(go())
    assert (reply.status_code, reply.reason_phrase, reply.http_version) == (
        503,
        "Busy Now",
        "HTTP/1.1",
    )
    assert reply.headers["x-two"] == "two words"
    assert reply.headers["retry-after"] == "7"
    assert reply.content == b"{}"


def recording_heads(heads: list[bytes]) -> Script:
    """A server script that keeps each request's head in `heads` and answers 200."""

    def record(peer: Peer) -> None:
        head = peer.request()
        assert head is not None
        heads.append(head)
        peer.send(response())
        peer.hold()

    return record


def test_the_request_carries_method_target_and_headers(kind: str) -> None:
    heads: list[bytes] = []
    with ScriptServer(default=recording_heads(heads)) as server:

        async def go() -> None:
            async with httpx.AsyncClient(transport=make_transport(kind)) as client:
                await client.get(server.url + "?a=1&b=%20", headers={"X-Test": "yes"})

        asyncio.run(go())
    lines = heads[0].split(b"\r\n")
    assert lines[0] == b"GET /api/x?a=1&b=%20 HTTP/1.1"
    assert b"X-Test: yes" in lines
    assert any(line.lower().startswith(b"host: 127.0.0.1:") for line in lines)


def test_a_post_body_is_sent_whole(kind: str) -> None:
    bodies: list[bytes] = []

    def record(peer: Peer) -> None:
        head = peer.request()
        assert head is not None
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        data = peer._buffer
        while len(data) < length:
            data += peer.sock.recv(65536)
        bodies.append(data)
        peer.send(response())
        peer.hold()

    with ScriptServer(default=record) as server:

        async def go() -> int:
            async with httpx.AsyncClient(transport=make_transport(kind)) as client:
                return (await client.post(server.url, content=b"x" * 100_000)).status_code

        assert asyncio.run(go()) == 200
    assert bodies == [b"x" * 100_000]


def test_an_http_1_0_answer_ends_at_close(kind: str, server: ScriptServer) -> None:
    body = b'{"old": "' + b"y" * 200_000 + b'"}'
    server.queue(once(response(body, headers=b"", version=b"HTTP/1.0"), then="close"))
    assert run(kind, server, n=2) == [(200, body), OK]
    assert server.connections == 2  # a close-delimited answer ends its connection


def test_a_head_without_headers_ends_at_close(kind: str, server: ScriptServer) -> None:
    server.queue(once(b"HTTP/1.1 200 OK\r\n\r\n" + BODY, then="close"))
    assert run(kind, server) == [OK]


def test_head_request_reads_no_body_and_keeps_the_connection(kind: str) -> None:
    def script(peer: Peer) -> None:
        head = peer.request()
        assert head is not None and head.startswith(b"HEAD ")
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n")
        keep_alive(BODY)(peer)

    with ScriptServer(default=script) as server:

        async def go() -> list[Outcome]:
            async with httpx.AsyncClient(transport=make_transport(kind)) as client:
                head = await client.head(server.url)
                get = await client.get(server.url)
                return [(head.status_code, head.content), (get.status_code, get.content)]

        assert asyncio.run(go()) == [(200, b""), OK]
        assert server.connections == 1


def test_informational_answers_are_skipped(kind: str, server: ScriptServer) -> None:
    early = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
    server.queue(once(early + response()))
    assert run(kind, server) == [OK]


def test_chunked_with_trailers(kind: str, server: ScriptServer) -> None:
    head = b"Transfer-Encoding: chunked\r\n"
    body = chunked(BODY[:5], BODY[5:], end=b"0\r\nX-Checksum: 1\r\n\r\n")
    server.queue(keep_alive_raw(response(body, headers=head)))
    assert run(kind, server, n=2) == [OK, OK]
    assert server.connections == 1  # the trailer ends the answer; the connection is kept


def test_duplicated_equal_content_length_is_one_length(kind: str, server: ScriptServer) -> None:
    head = b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(BODY), len(BODY))
    server.queue(once(response(headers=head)))
    assert run(kind, server) == [OK]


def test_a_large_body_comes_whole(kind: str, server: ScriptServer) -> None:
    body = bytes(range(256)) * 40_000  # 10 MiB: more than one read, more than one_read
    server.default = keep_alive(body)
    assert run(kind, server, n=2) == [(200, body)] * 2


# --------------------------------------------------------------------------- broken framing


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"HTTX/9.9 lol\r\n\r\n", id="status-line-garbage"),
        pytest.param(b"\x00\xff\xfe binary \x01\r\n\r\n", id="binary-garbage"),
        pytest.param(b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", id="four-digit-status"),
        pytest.param(b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", id="header-without-colon"),
        pytest.param(b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", id="space-in-header-name"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n12345",
            id="conflicting-content-length",
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", id="negative-length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n", id="float-length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            id="unsupported-transfer-coding",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            id="chunk-size-not-hex",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 40 + b"\r\nabc\r\n",
            id="chunk-size-overlong",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
            id="chunk-without-crlf",
        ),
    ],
)
def test_malformed_answers_are_protocol_errors(
    kind: str, server: ScriptServer, head: bytes
) -> None:
    server.queue(once(head, then="close"))
    assert run(kind, server) == [httpx.RemoteProtocolError]


@pytest.mark.parametrize("how", ["close", "half-close"])
def test_chunked_body_without_its_last_chunk(kind: str, server: ScriptServer, how: str) -> None:
    head = b"Transfer-Encoding: chunked\r\n"
    server.queue(once(response(chunked(BODY, end=b""), headers=head), then=how))
    assert run(kind, server, timeout=httpx.Timeout(WAIT_S, read=1.0)) == [httpx.RemoteProtocolError]


@pytest.mark.parametrize("how", ["close", "half-close"])
def test_content_length_longer_than_the_body(kind: str, server: ScriptServer, how: str) -> None:
    head = b"Content-Length: %d\r\n" % (len(BODY) + 50)
    server.queue(once(response(headers=head), then=how))
    assert run(kind, server) == [httpx.RemoteProtocolError]


def test_content_length_shorter_than_the_body(kind: str, server: ScriptServer) -> None:
    """The answer is cut at its declared length; the bytes after it are not taken for the
    next answer (the lean transport drops the connection; httpx's takes them as the start of
    its next answer, or opens a new connection, depending on when they arrive)."""
    head = b"Content-Length: 5\r\n"
    server.queue(once(response(headers=head) + b"HTTP/1.1 200 OK\r\n"))
    outcomes = run(kind, server, n=2, timeout=httpx.Timeout(WAIT_S, read=1.0))
    assert outcomes[0] == (200, BODY[:5])
    if kind == "lean":
        assert outcomes[1] == OK
    else:  # the stray bytes, when httpx has read them, start its next answer
        assert outcomes[1] in (OK, httpx.RemoteProtocolError, httpx.ReadTimeout)


@pytest.mark.parametrize("size", [MAX_HEAD_BYTES + 1024, 3 * MAX_HEAD_BYTES])
def test_a_head_larger_than_the_limit_is_refused(
    kind: str, server: ScriptServer, size: int
) -> None:
    """httpx's limit (h11's) holds only for a head that is still incomplete after a 64 KiB
    read, so a head just over it may pass there; the lean transport counts the whole head."""
    big = b"X-Big: " + b"a" * size + b"\r\n"
    server.queue(once(response(headers=big + b"Content-Length: 0\r\n"), then="close"))
    outcome = run(kind, server)
    if kind == "lean" or size > 2 * MAX_HEAD_BYTES:
        assert outcome == [httpx.RemoteProtocolError]
    else:
        assert outcome in ([httpx.RemoteProtocolError], [(200, b"")])


def test_too_many_headers_are_refused_by_size(kind: str, server: ScriptServer) -> None:
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(20_000))  # ~200 KiB of tiny headers
    server.queue(once(response(headers=many + b"Content-Length: 0\r\n"), then="close"))
    assert run(kind, server) == [httpx.RemoteProtocolError]


def test_many_headers_within_the_limit_are_read(kind: str, server: ScriptServer) -> None:
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(2_000))
    server.queue(once(response(headers=many + b"Content-Length: %d\r\n" % len(BODY))))
    assert run(kind, server) == [OK]


# --------------------------------------------------------------------------- hang-ups


def test_reset_in_the_middle_of_the_head(kind: str, server: ScriptServer) -> None:
    server.queue(once(b"HTTP/1.1 200 OK\r\nContent-Le", then="reset"))
    assert run(kind, server) == [httpx.ReadError]


def test_reset_in_the_middle_of_the_body(kind: str, server: ScriptServer) -> None:
    server.queue(once(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + BODY, then="reset"))
    assert run(kind, server) == [httpx.ReadError]


def test_close_in_the_middle_of_the_head(kind: str, server: ScriptServer) -> None:
    server.queue(once(b"HTTP/1.1 200 OK\r\nContent-Le", then="close"))
    assert run(kind, server) == [httpx.RemoteProtocolError]


@pytest.mark.parametrize("how", ["close", "half-close", "reset"])
def test_hang_up_before_answering_a_new_connection(
    kind: str, server: ScriptServer, how: str
) -> None:
    server.queue(once(b"", then=how))
    expected = httpx.ReadError if how == "reset" else httpx.RemoteProtocolError
    assert run(kind, server) == [expected]
    assert server.connections == 1  # a new connection is not tried again


def _answer_then(how: str) -> Script:
    """Answer one request (keep-alive), read the next one, then hang up without answering."""

    def script(peer: Peer) -> None:
        if peer.request() is None:
            return
        peer.send(response())
        if peer.request() is None:
            return
        finish(peer, how)

    return script


@pytest.mark.parametrize("how", ["close", "reset"])
def test_stale_connection_hung_up_on_the_next_request(
    kind: str, server: ScriptServer, how: str
) -> None:
    """The server drops a kept-alive connection as the next request reaches it: the error
    httpx gives, not a silent second send (the client's retry policy decides, and counts it),
    and the request after it goes on a new connection."""
    server.queue(_answer_then(how))
    expected = httpx.ReadError if how == "reset" else httpx.RemoteProtocolError
    assert run(kind, server, n=3) == [OK, expected, OK]
    assert server.connections == 2


@pytest.mark.parametrize("how", ["close", "half-close"])
def test_server_closing_an_idle_connection(kind: str, server: ScriptServer, how: str) -> None:
    """The server closes a kept-alive connection while it is idle: the next request goes on
    a new one (both transports notice before reusing it)."""

    def script(peer: Peer) -> None:
        if peer.request() is None:
            return
        peer.send(response())
        if how == "close":
            peer.sock.close()
            server.closed.set()
        else:
            peer.half_close()
            server.closed.set()
            peer.hold()

    server.queue(script)

    async def closed() -> None:
        assert await asyncio.to_thread(server.closed.wait, WAIT_S)
        await asyncio.sleep(0.05)  # let the event loop see the FIN (no assertion on time)

    assert run(kind, server, n=2, between=closed) == [OK, OK]
    assert server.connections == 2


# --------------------------------------------------------------------------- timeouts


def test_silent_server_is_a_read_timeout(kind: str, server: ScriptServer) -> None:
    """No byte of answer: ReadTimeout (not ConnectTimeout) -- the 'silent server' signal."""
    server.queue(once(b"", then="hold"))
    assert run(kind, server, timeout=httpx.Timeout(WAIT_S, read=0.2)) == [httpx.ReadTimeout]


def test_stalled_body_is_a_read_timeout(kind: str, server: ScriptServer) -> None:
    server.queue(once(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", then="hold"))
    assert run(kind, server, timeout=httpx.Timeout(WAIT_S, read=0.2)) == [httpx.ReadTimeout]


def test_tls_handshake_never_answered_is_a_connect_timeout(kind: str) -> None:
    with ScriptServer(default=lambda peer: peer.hold()) as server:
        url = server.url.replace("http://", "https://")

        async def go() -> list[Outcome]:
            return await fetch_all(
                make_transport(kind), url, timeout=httpx.Timeout(WAIT_S, connect=0.2)
            )

        assert asyncio.run(go()) == [httpx.ConnectTimeout]


def test_connection_refused_is_a_connect_error(kind: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        outcomes = asyncio.run(fetch_all(make_transport(kind), f"http://127.0.0.1:{port}/"))
    assert outcomes == [httpx.ConnectError]


def test_unsupported_scheme(kind: str) -> None:
    outcomes = asyncio.run(fetch_all(make_transport(kind), "ftp://127.0.0.1/x"))
    assert outcomes == [httpx.UnsupportedProtocol]


def test_a_cancelled_request_leaves_a_usable_transport(kind: str, server: ScriptServer) -> None:
    server.queue(once(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", then="hold"))

    async def go() -> Outcome:
        async with httpx.AsyncClient(transport=make_transport(kind), timeout=WAIT_S) as client:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await client.get(server.url)
            reply = await client.get(server.url)
            return reply.status_code, reply.content

    assert asyncio.run(go()) == OK
    assert server.connections == 2


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_server(ca: trustme.CA, *names: str) -> ScriptServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return ScriptServer(tls=context)


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_tls_with_the_ca_is_accepted(kind: str, ca: trustme.CA) -> None:
    with _tls_server(ca, "127.0.0.1") as server:
        assert run(kind, server, n=2, ssl_context=_trusting(ca)) == [OK, OK]
        assert server.connections == 1


# httpx's transport (httpcore over anyio) can leave the plain socket of a refused TLS handshake
# for the garbage collector, which then warns "unclosed transport"; the lean transport may not.
HTTPX_LEAKS_ON_TLS_REFUSAL = [
    pytest.param(
        "httpx",
        marks=pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    ),
    "lean",
]


@pytest.mark.parametrize("kind", HTTPX_LEAKS_ON_TLS_REFUSAL)
def test_tls_without_the_ca_is_refused(kind: str, ca: trustme.CA) -> None:
    with _tls_server(ca, "127.0.0.1") as server:
        assert run(kind, server) == [httpx.ConnectError]
        assert server.requests == 0


@pytest.mark.parametrize("kind", HTTPX_LEAKS_ON_TLS_REFUSAL)
def test_tls_for_another_host_name_is_refused(kind: str, ca: trustme.CA) -> None:
    with _tls_server(ca, "example.org") as server:
        assert run(kind, server, ssl_context=_trusting(ca)) == [httpx.ConnectError]
        assert server.requests == 0


# --------------------------------------------------------------------------- through the client

MAX_BODY = 1 * MIB


def _client_get(kind: str, server: ScriptServer, timeout: float = WAIT_S) -> Any:
    """One session fetched by roomsync's own client over `kind`, --max-body 1 MiB, no retry."""
    settings = Settings(
        base_url=server.url.rsplit("/api/x", 1)[0],
        project_id="p",
        api_token="t",
        timeout=timeout,
        retries=1,
        max_body=MAX_BODY,
    )

    async def go() -> Any:
        async with SignalWireClient(settings, transport=make_transport(kind)) as client:
            return await client.get_room_session("abc")

    return asyncio.run(go())


# Under parallel load a socket of this exchange is sometimes left to the garbage collector after
# the deadline cuts the dripped body (seen mostly on httpx's own transport): a ResourceWarning,
# not what this test asserts; the leak is noted for a later look, not hidden elsewhere.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_drip_is_bounded_by_the_request_deadline(kind: str, server: ScriptServer) -> None:
    def drip(peer: Peer) -> None:
        if peer.request() is not None:
            peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            peer.drip(b" " * 1000, 0.05)  # each byte well within any read timeout

    server.queue(drip)
    with pytest.raises(TransientError, match="no complete answer within --timeout"):
        _client_get(kind, server, timeout=0.5)


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
@pytest.mark.parametrize("encoding", ["identity", "gzip", "deflate"])
def test_body_over_max_body_fails_its_id(
    kind: str, server: ScriptServer, framing: str, encoding: str
) -> None:
    """Over --max-body after decompression, however framed: refused, never held whole."""
    if encoding == "identity":
        body = b" " * (4 * MIB) + b"{}"
    else:
        body = compression_bomb(b"{}", encoding, 256 * MIB)  # a quarter GiB inflated
    headers = b"" if encoding == "identity" else b"Content-Encoding: %s\r\n" % encoding.encode()
    if framing == "content-length":
        data = response(body, headers=headers + b"Content-Length: %d\r\n" % len(body))
    elif framing == "chunked":
        pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        data = response(chunked(*pieces), headers=headers + b"Transfer-Encoding: chunked\r\n")
    else:
        data = response(body, headers=headers, version=b"HTTP/1.0")
    server.queue(once(data, then="close"))
    with pytest.raises(BodyTooLargeError):
        _client_get(kind, server)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_body_within_max_body_decodes(
    kind: str, server: ScriptServer, encoding: str
) -> None:
    inflated = b" " * (MIB // 2) + b'{"id": "abc"}'
    body = gzip.compress(inflated) if encoding == "gzip" else zlib.compress(inflated)
    head = b"Content-Encoding: %s\r\nContent-Length: %d\r\n" % (encoding.encode(), len(body))
    server.queue(once(response(body, headers=head)))
    assert _client_get(kind, server) == {"id": "abc"}


def test_silent_server_through_the_client_is_unreachable(kind: str, server: ScriptServer) -> None:
    """Nothing has answered yet: a server that never answers is taken for no server at all
    (issue 22, defect 4), on either transport."""
    server.queue(once(b"", then="hold"))
    with pytest.raises(UnreachableError, match="SIGNALWIRE_SPACE"):
        _client_get(kind, server, timeout=0.3)


def test_a_header_with_a_line_break_is_never_sent(kind: str, server: ScriptServer) -> None:
    """Headers are validated whenever they change (the lean transport reuses the last check
    only for headers equal to the last request's): no request splitting."""

    async def go() -> list[Outcome]:
        outcomes: list[Outcome] = []
        async with httpx.AsyncClient(transport=make_transport(kind), timeout=WAIT_S) as client:
            for value in ("fine", "bad\r\nX-Injected: 1", "fine"):
                try:
                    reply = await client.get(server.url, headers={"X-Value": value})
                    outcomes.append((reply.status_code, reply.content))
                except httpx.TransportError as exc:
                    outcomes.append(type(exc))
        return outcomes

    assert asyncio.run(go()) == [OK, httpx.LocalProtocolError, OK]


# --------------------------------------------------------------------------- llhttp (issue 21)
# The lean transport parses with httptools (llhttp) in its strict mode; these are the inputs
# where a C parser, fed in pieces, could judge differently from h11. Where the two transports
# differ, the lean transport's outcome is the one RFC 9112 asks for (see each test).


def _split_everywhere(data: bytes) -> Script:
    """Answer request i with `data` sent in two writes split at byte i (0 < i < len(data)),
    a pause between them so that the client reads the first part on its own."""

    def script(peer: Peer) -> None:
        for i in range(1, len(data)):
            if peer.request() is None:
                return
            peer.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not peer.send(data[:i]) or peer.stopping.wait(0.002) or not peer.send(data[i:]):
                return
        peer.hold()

    return script


SPLIT_HEADS = {
    "plain": response(headers=b"Content-Length: %d\r\nX-Two:  two words \r\n" % len(BODY)),
    "1xx-first": b"HTTP/1.1 100 Continue\r\nX-Early: 1\r\n\r\n"
    + response(headers=b"Content-Length: %d\r\nX-Two: two words\r\n" % len(BODY)),
    "repeated-length": response(
        headers=b"Content-Length: %d\r\nX-Two: two words\r\nContent-Length: %d\r\n"
        % (len(BODY), len(BODY))
    ),
    "chunked": response(
        chunked(BODY[:7], BODY[7:]),
        headers=b"Transfer-Encoding: chunked\r\nX-Two: two words\r\n",
    ),
}


@pytest.mark.parametrize("name", list(SPLIT_HEADS))
def test_an_answer_split_at_every_byte_is_read_alike(kind: str, name: str) -> None:
    """The same answer, cut in two at every byte boundary (the head's end, the empty line's
    CR and LF, a 1xx head's end, the chunk sizes), reads the same on one kept connection."""
    data = SPLIT_HEADS[name]
    with ScriptServer(default=_split_everywhere(data)) as server:

        async def go() -> list[tuple[int, bytes, str | None, str | None]]:
            got = []
            async with httpx.AsyncClient(transport=make_transport(kind), timeout=WAIT_S) as c:
                for _ in range(1, len(data)):
                    reply = await c.get(server.url)
                    got.append(
                        (
                            reply.status_code,
                            reply.content,
                            reply.headers.get("x-two"),
                            reply.headers.get("x-early"),
                        )
                    )
            return got

        outcomes = asyncio.run(go())
        assert outcomes == [(200, BODY, "two words", None)] * (len(data) - 1)
        assert server.connections == 1


def test_trailing_whitespace_of_a_header_value_is_not_its_value(
    kind: str, server: ScriptServer
) -> None:
    head = b"Content-Length: %d\r\nX-Pad: \t padded \t \r\n" % len(BODY)
    server.queue(once(response(headers=head)))

    async def go() -> str:
        async with httpx.AsyncClient(transport=make_transport(kind)) as client:
            return (await client.get(server.url)).headers["x-pad"]

    assert asyncio.run(go()) == "padded"


def test_a_status_line_without_a_reason(kind: str, server: ScriptServer) -> None:
    """`HTTP/1.1 200` with no SP and no reason (RFC 9112 4: the reason is optional)."""
    server.queue(once(b"HTTP/1.1 200\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)))

    async def go() -> tuple[int, str, bytes]:
        async with httpx.AsyncClient(transport=make_transport(kind)) as client:
            reply = await client.get(server.url)
            return reply.status_code, reply.reason_phrase, reply.content

    assert asyncio.run(go()) == (200, "", BODY)


def test_chunk_extensions_are_ignored(kind: str, server: ScriptServer) -> None:
    body = b'5;name=value;q="a b"\r\n' + BODY[:5] + b"\r\n"
    body += b"%x;ext\r\n%s\r\n0;last\r\n\r\n" % (len(BODY) - 5, BODY[5:])
    server.queue(keep_alive_raw(response(body, headers=b"Transfer-Encoding: chunked\r\n")))
    assert run(kind, server, n=2) == [OK, OK]
    assert server.connections == 1


def test_informational_answer_with_headers_then_the_answer_in_one_packet(
    kind: str, server: ScriptServer
) -> None:
    """The 1xx's headers are not the answer's; both arrive in one send."""
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nX-Early: yes\r\nContent-Length: 9\r\n\r\n"
    server.queue(once(early + response(headers=b"Content-Length: %d\r\n" % len(BODY))))

    async def go() -> tuple[int, bytes, str | None, str | None]:
        async with httpx.AsyncClient(transport=make_transport(kind)) as client:
            reply = await client.get(server.url)
            return (
                reply.status_code,
                reply.content,
                reply.headers.get("x-early"),
                reply.headers.get("link"),
            )

    assert asyncio.run(go()) == (200, BODY, None, None)


def test_a_flood_of_informational_answers_counts_against_the_head_limit(
    kind: str, server: ScriptServer
) -> None:
    """An endless run of 100 Continue: the lean transport counts every 1xx head into the
    response head's limit; httpx's (h11's limit is per head) reads all of them."""
    flood = b"HTTP/1.1 100 Continue\r\n\r\n" * (MAX_HEAD_BYTES // 25 + 100)
    server.queue(once(flood + response(), then="close"))
    outcome = run(kind, server)
    assert outcome == ([httpx.RemoteProtocolError] if kind == "lean" else [OK])


def test_pipelined_second_answer_is_never_taken_for_the_next_request(
    kind: str, server: ScriptServer
) -> None:
    """Two answers to one request in one packet: the second is not the next request's answer
    (the lean transport drops the connection; httpx's hands it to the next request)."""
    other = b'{"id": "not yours"}'
    server.queue(once(response() + response(other)))
    outcomes = run(kind, server, n=2, timeout=httpx.Timeout(WAIT_S, read=1.0))
    if kind == "lean":
        assert outcomes == [OK, OK]
        assert server.connections == 2
    else:
        assert outcomes[0] == OK
        assert outcomes[1] in (OK, (200, other))


@pytest.mark.parametrize("stray", [response(), b"garbage", b"\r\n"])
def test_stray_bytes_on_an_idle_connection_retire_it(
    kind: str, server: ScriptServer, stray: bytes
) -> None:
    """An answer (or anything) sent while no request is out: the next request goes on a new
    connection and gets its own answer."""

    def script(peer: Peer) -> None:
        if peer.request() is None:
            return
        peer.send(response())
        peer.send(b"")
        peer.stopping.wait(0.05)
        peer.send(stray)
        server.closed.set()
        keep_alive(b'{"id": "late"}')(peer)

    server.queue(script)

    async def sent() -> None:
        assert await asyncio.to_thread(server.closed.wait, WAIT_S)
        await asyncio.sleep(0.05)  # let the event loop take the bytes in (no assertion on time)

    assert run(kind, server, n=2, between=sent) == [OK, OK]
    assert server.connections == 2


def test_bytes_after_a_head_answer_retire_the_connection(kind: str, server: ScriptServer) -> None:
    """A HEAD answer has no body whatever its Content-Length says; a body sent anyway is
    bytes after the answer: the connection is not reused."""

    def script(peer: Peer) -> None:
        if peer.request() is None:
            return
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        keep_alive(BODY)(peer)

    server.queue(script)

    async def go() -> list[Outcome]:
        async with httpx.AsyncClient(transport=make_transport(kind), timeout=1.0) as client:
            head = await client.head(server.url)
            outcomes: list[Outcome] = [(head.status_code, head.content)]
            try:
                get = await client.get(server.url)
                outcomes.append((get.status_code, get.content))
            except httpx.TransportError as exc:
                outcomes.append(type(exc))
            return outcomes

    outcomes = asyncio.run(go())
    assert outcomes[0] == (200, b"")
    if kind == "lean":
        assert outcomes[1] == OK
        assert server.connections == 2
    else:  # h11 takes "hello" for the start of the next answer
        assert outcomes[1] in (OK, httpx.RemoteProtocolError)


def test_connection_close_in_the_request_closes_it(kind: str, server: ScriptServer) -> None:
    async def go() -> list[int]:
        codes = []
        async with httpx.AsyncClient(transport=make_transport(kind), timeout=WAIT_S) as client:
            for _ in range(2):
                reply = await client.get(server.url, headers={"Connection": "close"})
                codes.append(reply.status_code)
        return codes

    assert asyncio.run(go()) == [200, 200]
    assert server.connections == 2


@pytest.mark.parametrize("how", ["connection-close", "http-1.0"])
def test_an_answer_that_closes_is_not_reused(kind: str, server: ScriptServer, how: str) -> None:
    if how == "connection-close":
        data = response(headers=b"Connection: close\r\nContent-Length: %d\r\n" % len(BODY))
    else:
        data = response(version=b"HTTP/1.0")
    server.queue(keep_alive_raw(data))
    assert run(kind, server, n=2) == [OK, OK]
    assert server.connections == 2


def test_http_1_0_keep_alive_with_a_length(kind: str, server: ScriptServer) -> None:
    """HTTP/1.0 with `Connection: keep-alive` and a length: the answer is read whole (the lean
    transport keeps the connection as llhttp allows; httpx's closes it)."""
    head = b"Connection: keep-alive\r\nContent-Length: %d\r\n" % len(BODY)
    server.queue(keep_alive_raw(response(headers=head, version=b"HTTP/1.0")))
    assert run(kind, server, n=2) == [OK, OK]
    assert server.connections == (1 if kind == "lean" else 2)


def test_a_chunked_request_body_is_framed(kind: str) -> None:
    bodies: list[bytes] = []

    def record(peer: Peer) -> None:
        head = peer.request()
        assert head is not None and b"transfer-encoding: chunked" in head.lower()
        data = peer._buffer
        while not data.endswith(b"0\r\n\r\n"):
            data += peer.sock.recv(65536)
        bodies.append(data)
        peer.send(response())
        peer.hold()

    async def parts() -> Any:
        yield b"abc"
        yield b"defgh"

    with ScriptServer(default=record) as server:

        async def go() -> int:
            async with httpx.AsyncClient(transport=make_transport(kind)) as client:
                return (await client.post(server.url, content=parts())).status_code

        assert asyncio.run(go()) == 200
    assert bodies == [b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Value": "a\x00b"}, id="nul-in-value"),
        pytest.param({"X-Value": "a\nb"}, id="lf-in-value"),
        pytest.param({"X-Value": "a\rb"}, id="cr-in-value"),
        pytest.param({"Bad Name": "x"}, id="space-in-name"),
        pytest.param({"Bad:Name": "x"}, id="colon-in-name"),
        pytest.param({"X-\x00": "x"}, id="nul-in-name"),
    ],
)
def test_a_bad_request_header_is_never_sent(
    kind: str, server: ScriptServer, headers: dict[str, str]
) -> None:
    async def go() -> Outcome:
        async with httpx.AsyncClient(transport=make_transport(kind), timeout=WAIT_S) as client:
            try:
                reply = await client.get(server.url, headers=headers)
            except httpx.TransportError as exc:
                return type(exc)
            return reply.status_code, reply.content

    assert asyncio.run(go()) == httpx.LocalProtocolError
    assert server.requests == 0


def test_a_control_character_in_a_request_header_is_never_sent(
    kind: str, server: ScriptServer
) -> None:
    """An ESC or DEL in a value is outside RFC 9110's field-vchar: the lean transport refuses
    it; h11 (httpx's) lets every control byte but NUL, CR and LF through."""

    async def go() -> Outcome:
        async with httpx.AsyncClient(transport=make_transport(kind), timeout=WAIT_S) as client:
            try:
                reply = await client.get(server.url, headers={"X-Value": "a\x1b[2Jb"})
            except httpx.TransportError as exc:
                return type(exc)
            return reply.status_code, reply.content

    assert asyncio.run(go()) == (httpx.LocalProtocolError if kind == "lean" else OK)


@pytest.mark.parametrize("method", ["GE T", "GET /x HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET", "G\x00"])
def test_a_bad_request_method_is_never_sent(kind: str, server: ScriptServer, method: str) -> None:
    """httpx passes any method string to its transport; one that is not a token would split
    the request line. (A bad target never reaches a transport: httpx's URL refuses control
    bytes and escapes spaces; the lean transport checks it all the same.)"""

    async def go() -> Outcome:
        async with httpx.AsyncClient(transport=make_transport(kind), timeout=WAIT_S) as client:
            try:
                reply = await client.request(method, server.url)
            except httpx.TransportError as exc:
                return type(exc)
            return reply.status_code, reply.content

    assert asyncio.run(go()) == httpx.LocalProtocolError
    assert server.requests == 0


# Refused by both transports.
BOTH_REFUSE = {
    "nul-in-header-value": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
    "nul-in-header-name": b"HTTP/1.1 200 OK\r\nX-\x00A: 1\r\nContent-Length: 0\r\n\r\n",
    "chunk-size-garbage": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2zz\r\n{}\r\n0\r\n\r\n",
    "chunk-size-absurd": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"1" + b"0" * 200 + b"\r\n{}\r\n0\r\n\r\n",
    "te-gzip-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    b"2\r\n{}\r\n0\r\n\r\n",
    "te-chunked-gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n{}",
    "te-chunked-twice": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "rtsp": b"RTSP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    "status-two-digits": b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\n{}",
    "unequal-length-list": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n{}",
    "length-overflow": b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 30 + b"\r\n\r\n{}",
    "bare-cr-in-value": b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\n{}",
    # RFC 9110 15: status codes are 100-599 by class; 0xx has no class (llhttp takes it).
    "status-099": b"HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\n{}",
    # Never asked for: no Upgrade was sent (llhttp pauses for it; refused here first).
    "switching-protocols": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
    b"Connection: upgrade\r\n\r\n{}",
}


@pytest.mark.parametrize("name", list(BOTH_REFUSE))
def test_hostile_answers_both_refuse(kind: str, server: ScriptServer, name: str) -> None:
    server.queue(once(BOTH_REFUSE[name], then="close"))
    assert run(kind, server) == [httpx.RemoteProtocolError]


# Refused by the lean transport, taken by httpx's (h11): each as RFC 9112 allows or asks.
LEAN_REFUSES = {
    # RFC 9112 5.2: obs-fold is deprecated; a user agent MAY replace it with SP, but llhttp
    # takes it only with lenient_headers (which also lets control bytes through): refused.
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 2\r\n\r\n{}",
    # RFC 9112 2.2: a recipient MAY take a bare LF as a line end; llhttp's strict mode does
    # not (lenient_optional_cr_before_lf): refused.
    "bare-lf-lines": b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}",
    # RFC 9112 6.3: both framings "ought to be handled as an error" (smuggling): refused.
    "te-and-length": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n"
    b"\r\n2\r\n{}\r\n0\r\n\r\n",
    # RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
    "te-in-http-1-0": b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    # RFC 9112 4: reason-phrase is HTAB / SP / VCHAR / obs-text; an ESC would reach logs.
    "control-in-reason": b"HTTP/1.1 200 O\x1b[2JK\r\nContent-Length: 2\r\n\r\n{}",
    "http-2-0-line": b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    # RFC 9112 2.3: a higher minor version SHOULD be read as 1.1; llhttp's strict mode
    # refuses it (lenient_version). No HTTP/1.2 exists: refused, the one id fails.
    "http-1-2": b"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\n{}",
}


@pytest.mark.parametrize("name", list(LEAN_REFUSES))
def test_hostile_answers_the_lean_transport_refuses(
    kind: str, server: ScriptServer, name: str
) -> None:
    server.queue(once(LEAN_REFUSES[name], then="close"))
    outcome = run(kind, server, timeout=httpx.Timeout(WAIT_S, read=1.0))
    if kind == "lean":
        assert outcome == [httpx.RemoteProtocolError]
    else:  # h11 reads each of them as the 200 it claims to be
        assert outcome == [(200, b"{}")]


def test_a_listed_equal_content_length_is_one_length(kind: str, server: ScriptServer) -> None:
    """`Content-Length: 23, 23` (RFC 9110 8.6 lets a recipient take it as 23, as h11 does)."""
    head = b"Content-Length: %d, %d\r\n" % (len(BODY), len(BODY))
    server.queue(keep_alive_raw(response(headers=head)))
    assert run(kind, server, n=2) == [OK, OK]


@pytest.mark.parametrize("extra", [0, 1])
@pytest.mark.parametrize("interim", [False, True])
def test_the_head_limit_is_counted_to_the_byte(
    server: ScriptServer, extra: int, interim: bool
) -> None:
    """The lean transport counts the head itself (llhttp does not), 1xx heads included and the
    empty line too: a head of exactly `max_head` bytes is read, one byte more is refused."""
    limit = 400
    early = b"HTTP/1.1 100 Continue\r\n\r\n" if interim else b""
    head = early + b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Pad: \r\n\r\n" % len(BODY)
    pad = b"p" * (limit - len(head) + extra)
    data = head.replace(b"X-Pad: ", b"X-Pad: " + pad) + BODY
    server.queue(once(data, then="close"))

    async def go() -> list[Outcome]:
        return await fetch_all(Http11Transport(max_head=limit), server.url)

    assert asyncio.run(go()) == ([OK] if extra == 0 else [httpx.RemoteProtocolError])


def test_host_is_the_first_header_written(kind: str) -> None:
    """RFC 9110 7.2: a user agent SHOULD send Host first (h11 does; so does the lean
    transport, whatever order the headers were given in)."""
    heads: list[bytes] = []
    with ScriptServer(default=recording_heads(heads)) as server:

        async def go() -> None:
            async with httpx.AsyncClient(transport=make_transport(kind)) as client:
                request = client.build_request("GET", server.url, headers={"X-First": "1"})
                del request.headers["Host"]
                request.headers["Host"] = "example.org"  # now the last header
                await client.send(request)

        asyncio.run(go())
    lines = heads[0].split(b"\r\n")
    assert lines[1] == b"Host: example.org"
    assert b"X-First: 1" in lines


def test_obs_text_in_a_header_value_comes_through(kind: str, server: ScriptServer) -> None:
    """Bytes 0x80-0xFF are obs-text, allowed in a field value (RFC 9110 5.5)."""
    head = b"Content-Length: %d\r\nX-Latin: caf\xe9\r\n" % len(BODY)
    server.queue(once(response(headers=head)))

    async def go() -> bytes:
        async with httpx.AsyncClient(transport=make_transport(kind)) as client:
            return (await client.get(server.url)).headers.raw[-1][1]

    assert asyncio.run(go()) == b"caf\xe9"


def test_a_refused_request_header_value_is_never_echoed(server: ScriptServer) -> None:
    """The lean transport's error names the header, never its value (it may be the
    credentials). (h11, under httpx's transport, puts the value in its message.)"""

    async def go() -> str:
        async with httpx.AsyncClient(transport=Http11Transport(), timeout=WAIT_S) as client:
            with pytest.raises(httpx.LocalProtocolError) as caught:
                await client.get(server.url, headers={"Authorization": "Basic s3cr3t\r\nX: 1"})
            return str(caught.value)

    message = asyncio.run(go())
    assert "s3cr3t" not in message
    assert "Authorization" in message
    assert server.requests == 0


@pytest.mark.parametrize("where", ["trailer", "chunk-extension"])
def test_chunk_framing_is_bounded_like_a_head(kind: str, server: ScriptServer, where: str) -> None:
    """A trailer or a chunk extension of 300 KiB: not body, so --max-body does not bound it;
    both transports refuse it as they refuse a head that large (h11: per event; the lean
    transport: framing beyond the body may not pass the head limit plus 32 bytes a chunk)."""
    flood = b"a" * (3 * MAX_HEAD_BYTES)
    if where == "trailer":
        body = b"5\r\nhello\r\n0\r\nX-Trailer: " + flood + b"\r\n\r\n"
    else:
        body = b"5;ext=" + flood + b"\r\nhello\r\n0\r\n\r\n"
    server.queue(once(response(body, headers=b"Transfer-Encoding: chunked\r\n"), then="close"))
    assert run(kind, server) == [httpx.RemoteProtocolError]


def test_many_small_chunks_are_not_framing_abuse(kind: str, server: ScriptServer) -> None:
    """20,000 one-byte chunks with short extensions (about 20 bytes of framing each) are read."""
    body = b"".join(b"1;n=%d\r\n%c\r\n" % (i, 97 + i % 26) for i in range(20_000)) + b"0\r\n\r\n"
    expected = bytes(97 + i % 26 for i in range(20_000))
    server.queue(once(response(body, headers=b"Transfer-Encoding: chunked\r\n")))
    assert run(kind, server) == [(200, expected)]
