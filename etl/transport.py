"""One lean HTTP/1.1 keep-alive connection under httpx's transport interface (issue 21).

httpx stays the client API (auth, URLs, response types); below its transport interface httpcore
spent most of roomsync's CPU per request on machinery a lane does not need: a pool, anyio's
stream layers, locks and trace hooks around each step. `Http11Transport` is one connection on a
plain asyncio Protocol. Responses are parsed by httptools (llhttp, the C parser of Node.js and
uvicorn) in its strict mode, no leniency enabled; the request head is written here, from headers
validated once per distinct set. tests/test_transport.py runs the same hostile tests against this
transport and httpx's own, and says where the two judge a hostile answer differently.

What it keeps from httpx's transport, on purpose:
- timeouts per operation from the request's `timeout` extension: connect (TCP and TLS) is
  `ConnectTimeout`, waiting for a response byte `ReadTimeout`, a blocked write `WriteTimeout`;
  the whole-request deadline stays the caller's (etl/signalwire.py wraps each request in one);
- failures as httpx's exception types (ConnectError, ReadError, WriteError,
  RemoteProtocolError, LocalProtocolError...), which the client's retry and unreachable rules
  key on;
- a kept-alive connection that the server closed while idle, or that holds bytes nobody asked
  for, is noticed before it is reused (httpcore checks the same, `has_expired`) and replaced by a
  new one; one dropped as the request reaches it is an error, as there (the client's retry
  policy decides, and counts it);
- TLS through the SSLContext it is given (certificate and host name checked).

What llhttp does not do, done here: the response head is limited to `max_head` bytes (1xx heads
included); the answer to a HEAD request has no body whatever its headers say; a close-delimited
body ends at EOF, a body framed by length or chunks that EOF cuts short is an error; a response
must start with `HTTP/1.` (llhttp also takes RTSP and ICE); transfer codings other than a lone
`chunked` and 1xx `101 Switching Protocols` (never asked for) are refused; equal repeated
`Content-Length` values are taken as one (RFC 9110 8.6, as h11 does; llhttp refuses them).
A connection is reused only when the response is complete, allows keep-alive, and nothing
followed it (bytes past its end mean the server framed it wrongly, or pipelined a second answer
nobody asked for).

It does not read proxy variables: a run whose space goes through a proxy keeps httpx's own
transport (etl/signalwire.py decides). Bodies are streamed to the caller, which bounds them after
decompression (etl/bodies.py); a `Content-Length` body up to `one_read` bytes is handed over in
one piece.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator

import httptools
import httpx

MAX_HEAD_BYTES = 100 * 1024  # status line and headers: httpcore's limit, so both refuse alike
READ_BUFFER_HIGH = 1 << 20  # stop reading the socket while this much waits unread
ONE_READ_DEFAULT = 8 << 20  # Content-Length bodies up to this size come in one piece

DISCONNECTED = "Server disconnected without sending a response."  # httpcore's words
CUT_SHORT = "Server disconnected before the body ended."
HEAD_END = b"\r\n\r\n"
CHUNK_FRAMING = 32  # bytes a chunk may spend on its size line, extensions and CRLFs
PROTOCOL = b"HTTP/1."

# The request head's grammar (RFC 9110 5.1, 5.5; RFC 9112 3): what h11 checked, CTLs included.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_FIELD_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_REASON_CHARS = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])  # HTAB, SP, VCHAR, obs-text
# llhttp's words for repeated or listed Content-Length values (see _one_length)
_LENGTH_LIST_ERRORS = frozenset({"Duplicate Content-Length", "Invalid character in Content-Length"})


class _ReadTimeoutSignal(Exception):
    """A read or write waited longer than its timeout (mapped by the caller)."""


class _Stop(Exception):
    """Raised in a parser callback to stop llhttp: a second response began after ours."""


class _LengthList(Exception):
    """llhttp refused repeated or listed Content-Length values: judged by _one_length."""


class _Connection(asyncio.Protocol):
    """The socket's bytes, buffered as they come, for one reader at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._paused_reading = False
        self._drain: asyncio.Future[None] | None = None
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None

    # --- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > READ_BUFFER_HIGH and not self._paused_reading and self.transport:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close our side too: nothing more is sent after a request

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.eof = True
        self.error = exc
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- for the transport
    @property
    def idle_readable(self) -> bool:
        """Whether an idle connection has anything to say: EOF, an error or stray bytes
        (any of which means it must not carry another request)."""
        return self.eof or bool(self._buffer) or self.transport is None

    async def read(self, timeout: float | None) -> bytes:
        """What has arrived (waiting up to `timeout` for something); b"" at EOF."""
        if not self._buffer:
            if self.eof:
                if self.error is not None:
                    raise self.error
                return b""
            await self._wait(timeout)
            if not self._buffer:
                if self.error is not None:
                    raise self.error
                return b""
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._paused_reading and self.transport is not None:
            self._paused_reading = False
            self.transport.resume_reading()
        return data

    async def _wait(self, timeout: float | None) -> None:
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = (
            None
            if timeout is None
            else self._loop.call_later(timeout, _time_out, waiter)  # cheaper than a Timeout
        )
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def write(self, data: bytes, timeout: float | None) -> None:
        transport = self.transport
        if transport is None or self.lost or transport.is_closing():
            raise ConnectionResetError("the connection is closed")
        transport.write(data)
        drain = self._drain
        if drain is not None and not drain.done():
            timer = None if timeout is None else self._loop.call_later(timeout, _time_out, drain)
            try:
                await drain
            finally:
                if timer is not None:
                    timer.cancel()
        if self.lost:
            raise self.error or ConnectionResetError("the connection was closed")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.transport = None


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(_ReadTimeoutSignal())


async def _read(conn: _Connection, timeout: float | None) -> bytes:
    """`conn.read`, its errors as httpx's types."""
    try:
        return await conn.read(timeout)
    except _ReadTimeoutSignal:
        raise httpx.ReadTimeout("timed out") from None
    except OSError as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__) from exc


async def _gather(conn: _Connection, want: int, timeout: float | None) -> bytes:
    """At least `want` bytes from the socket, or fewer at EOF (errors as httpx's types)."""
    pieces: list[bytes] = []
    got = 0
    while got < want:
        data = await _read(conn, timeout)
        if not data:
            break
        pieces.append(data)
        got += len(data)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class _Exchange:
    """httptools' callbacks for one connection, one response at a time: the final response's
    head (1xx answers skipped), its framing, its body pieces, and how it ended.

    One llhttp parser serves the connection's responses in turn; a new one is made only after
    a HEAD request (whose body llhttp would otherwise wait for).
    """

    def __init__(self, max_head: int = MAX_HEAD_BYTES) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.max_framing = max_head  # chunk framing beyond CHUNK_FRAMING bytes a chunk
        self.head_request = False
        self._reset()

    def begin(self, head_request: bool) -> None:
        """Ready for the answer to a new request."""
        if self.head_request:  # llhttp still waits for the HEAD answer's body: start afresh
            self.parser = httptools.HttpResponseParser(self)
        self.head_request = head_request
        self._reset()

    def restart(self) -> None:
        """A new parser for the same answer (its head is fed again, rewritten)."""
        self.parser = httptools.HttpResponseParser(self)
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.http_version = b"HTTP/1.1"
        self.keep_alive = False
        self.length: int | None = None  # the body's Content-Length, when it is framed so
        self.chunked = False
        self.head_done = False  # the final answer's head has been parsed
        self.complete = False  # ... and its body has ended
        self.extra = False  # bytes came after the answer's end
        self.body: list[bytes] = []
        self.failure: httpx.RemoteProtocolError | None = None
        self.chunks = 0  # chunked: the chunks begun, the bytes fed and the body bytes got
        self.fed = self.got = 0

    # --- llhttp's callbacks
    def on_message_begin(self) -> None:
        if self.complete:  # a second answer in the same bytes: never taken for the next one
            self.extra = True
            raise _Stop
        self.reason = b""
        self.headers = []

    def on_status(self, status: bytes) -> None:
        self.reason += status  # in pieces when the status line comes in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.head_done:  # trailers are dropped (as httpx does)
            self.headers.append((name, value.rstrip(b" \t")))  # llhttp keeps trailing OWS

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # 100 Continue, 103 Early Hints: the answer is still to come
        if status < 100 or status == 101:
            self._fail(f"unexpected status {status} (no protocol switch was asked for)")
        if parser.get_http_version() not in ("1.1", "1.0"):
            self._fail(f"unsupported HTTP version {parser.get_http_version()}")
        if self.reason.translate(None, _REASON_CHARS):
            self._fail("control characters in the reason phrase")
        self.status = status
        self.http_version = b"HTTP/1.0" if parser.get_http_version() == "1.0" else b"HTTP/1.1"
        self.keep_alive = parser.should_keep_alive()  # before llhttp forgets the flags
        if not self.head_request and status != 204 and status != 304:
            self._framing()
        self.head_done = True

    def _framing(self) -> None:
        """The body's framing from the headers llhttp has checked (Content-Length digits and
        not with Transfer-Encoding); a transfer coding other than a lone chunked is refused:
        only chunked is ever decoded here (as in h11), and RFC 9112 6.1 forbids applying
        chunked twice; an HTTP/1.0 answer with Transfer-Encoding has faulty framing."""
        codings: list[bytes] = []
        for name, value in self.headers:
            size = len(name)
            if size == 14 and name.lower() == b"content-length":
                self.length = int(value)
            elif size == 17 and name.lower() == b"transfer-encoding":
                codings.append(value)
        if codings:
            if len(codings) > 1 or codings[0].strip().lower() != b"chunked":
                self._fail("unsupported Transfer-Encoding (only a lone chunked is read)")
            if self.http_version == b"HTTP/1.0":
                self._fail("Transfer-Encoding in an HTTP/1.0 answer")
            self.chunked = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.got += len(body)

    def on_chunk_header(self) -> None:
        self.chunks += 1

    def on_message_complete(self) -> None:
        if self.head_done:
            self.complete = True

    def _fail(self, message: str) -> None:
        self.failure = httpx.RemoteProtocolError(message)
        raise self.failure

    # --- for the transport
    def feed(self, data: bytes) -> None:
        """Parse these bytes; llhttp's errors as httpx's RemoteProtocolError."""
        if self.chunked:
            self._bound_framing(len(data))
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # 101 is refused first; this is a backstop
            raise httpx.RemoteProtocolError("unexpected protocol upgrade") from None
        except httptools.HttpParserError as exc:
            if self.failure is not None:
                raise self.failure from None
            if self.complete:  # the answer stands; the connection is not reused
                self.extra = True
                return
            if not self.head_done and str(exc) in _LENGTH_LIST_ERRORS:
                raise _LengthList from None
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__) from None

    def _bound_framing(self, size: int) -> None:
        """Chunk sizes, extensions and trailers are not body, so the caller's body limit does
        not bound them, and llhttp (and httptools, which gathers a field in pieces) have no
        limit of their own: what is fed beyond the body may not pass `max_head` plus
        CHUNK_FRAMING bytes a chunk (checked before each feed: overshoot is one read)."""
        self.fed += size
        if self.fed - self.got - size > self.max_framing + CHUNK_FRAMING * self.chunks:
            self._fail("chunk framing, extensions or trailers too large")

    def take_body(self) -> list[bytes]:
        pieces = self.body
        self.body = []
        return pieces

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.extra


def _head_end(tail: bytes, data: bytes) -> int:
    """Where in `data` the head ends (just past its empty line), or -1; `tail` holds the
    head's last bytes before `data` (at most 3), where the empty line may have begun."""
    if tail:
        at = (tail + data[:3]).find(HEAD_END)
        if at >= 0:
            return at + 4 - len(tail)
    at = data.find(HEAD_END)
    return -1 if at < 0 else at + 4


def _check_start(start: bytes, piece: bytes) -> bytes:
    """The first bytes of an answer, up to len(PROTOCOL): only HTTP/1.x is taken."""
    start += piece[: len(PROTOCOL) - len(start)]
    if start != PROTOCOL[: len(start)]:
        raise httpx.RemoteProtocolError("the answer does not start with HTTP/1.")
    return start


def _one_length(head: bytes) -> bytes:
    """The head with its Content-Length fields made one: repeated or listed values that are
    all the same number are that number (RFC 9110 8.6 allows it; h11 does it, llhttp refuses
    them); anything else is refused as conflicting or malformed."""
    lines = head[:-4].split(b"\r\n")
    values: set[bytes] = set()
    kept: list[bytes] = []
    at = -1
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.lower() == b"content-length":
            values.update(item.strip(b" \t") for item in value.split(b","))
            at = len(kept) if at < 0 else at
        else:
            kept.append(line)
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise httpx.RemoteProtocolError("conflicting or malformed Content-Length values")
    kept.insert(at, b"Content-Length: " + next(iter(values)))
    return b"\r\n".join([lines[0], *kept]) + HEAD_END


def _timeouts(request: httpx.Request) -> dict[str, float | None]:
    timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
    return timeouts


class Http11Transport(httpx.AsyncBaseTransport):
    """One HTTP/1.1 keep-alive connection, used by one request at a time (a lane).

    `ssl_context` verifies https origins (give the same context as httpx's own transport would
    use); `one_read` is the largest `Content-Length` body handed over in one piece (larger ones
    and chunked or close-delimited bodies stream in the pieces they arrive in); `max_head` bounds
    the response head (1xx heads included).
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        *,
        one_read: int = ONE_READ_DEFAULT,
        max_head: int = MAX_HEAD_BYTES,
    ) -> None:
        self._ssl_context = ssl_context
        self._one_read = one_read
        self._max_head = max_head
        self._conn: _Connection | None = None
        self._exchange: _Exchange | None = None
        self._origin: tuple[bytes, bytes, int] | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._methods: dict[str, bytes] = {}
        # The request headers as validated last time, and their written form: a client sends
        # the same ones with every request, so they are checked and written once, not per
        # request. Framing: None (no body), -1 (chunked) or the Content-Length.
        self._headers_raw: list[tuple[bytes, bytes]] | None = None
        self._headers_block = b""
        self._headers_framing: int | None = None
        self._headers_close = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._lock.acquire()
        try:
            response = await self._send(request)
        except BaseException:
            self._drop()
            self._lock.release()
            raise
        return response

    async def _send(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        timeouts = _timeouts(request)
        data = await self._request_bytes(request)
        conn, exchange = await self._connection(request, timeouts.get("connect"))
        exchange.begin(head_request=request.method == "HEAD")
        await _write(conn, data, timeouts.get("write"), request)
        await self._read_head(conn, exchange, timeouts.get("read"))
        return httpx.Response(
            status_code=exchange.status,
            headers=exchange.headers,
            stream=_Body(self, conn, exchange, timeouts.get("read")),
            extensions={"http_version": exchange.http_version, "reason_phrase": exchange.reason},
        )

    # --- connection
    async def _connection(
        self, request: httpx.Request, timeout: float | None
    ) -> tuple[_Connection, _Exchange]:
        url = request.url
        scheme = url.raw_scheme
        if scheme not in (b"http", b"https"):
            raise httpx.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{url.scheme}://'."
            )
        if not url.raw_host:
            raise httpx.UnsupportedProtocol("Request URL is missing an 'http://' or 'https://'.")
        origin = (scheme, url.raw_host, url.port or (443 if scheme == b"https" else 80))
        conn, exchange = self._conn, self._exchange
        if conn is not None and exchange is not None:
            if origin == self._origin and not conn.idle_readable:
                return conn, exchange
            self._drop()  # closed by the server while idle, stray bytes, or another origin
        conn = await self._connect(request, origin, timeout)
        exchange = _Exchange(self._max_head)
        self._conn, self._exchange, self._origin = conn, exchange, origin
        return conn, exchange

    async def _connect(
        self, request: httpx.Request, origin: tuple[bytes, bytes, int], timeout: float | None
    ) -> _Connection:
        scheme, raw_host, port = origin
        host = raw_host.decode("ascii")
        ssl_context: ssl.SSLContext | None = None
        if scheme == b"https":
            ssl_context = self._ssl_context or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop),
                    host,
                    port,
                    ssl=ssl_context,
                    server_hostname=host if ssl_context is not None else None,
                    # asyncio's own handshake limit would end it as a ConnectionAbortedError
                    # (a ConnectError): the connect timeout above ends it first.
                    ssl_handshake_timeout=None if not ssl_context or not timeout else timeout + 1,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "timed out", request=request) from exc
        except OSError as exc:  # refused, unknown host, TLS refused (ssl.SSLError is an OSError)
            raise httpx.ConnectError(str(exc), request=request) from exc
        return conn

    def _drop(self) -> None:
        """Forget the connection (closing it): the next request opens a new one."""
        if self._conn is not None:
            self._conn.close()
        self._conn = self._exchange = None
        self._origin = None

    # --- the request
    async def _request_bytes(self, request: httpx.Request) -> bytes:
        """The request as written: line, headers (validated once per distinct set) and body
        (framed as its headers say). Nothing that would split a request is ever sent."""
        method = self._methods.get(request.method)
        if method is None:
            method = _checked(_TOKEN, request.method.encode("ascii", "replace"), "method", request)
            self._methods[request.method] = method
        target = _checked(_TARGET, request.url.raw_path, "target", request)
        raw = request.headers.raw
        if raw != self._headers_raw:
            self._prepare_headers(raw, request)
        head = b"%s %s HTTP/1.1\r\n%s" % (method, target, self._headers_block)
        framing = self._headers_framing
        if framing is None:
            return head
        chunks = [chunk async for chunk in _request_body(request)]
        if framing < 0:
            body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
            return head + body + b"0\r\n\r\n"
        body = b"".join(chunks)
        if len(body) != framing:
            words = "Too much" if len(body) > framing else "Too little"
            raise httpx.LocalProtocolError(
                f"{words} data for declared Content-Length", request=request
            )
        return head + body

    def _prepare_headers(self, raw: list[tuple[bytes, bytes]], request: httpx.Request) -> None:
        """Validate the request headers and write them, Host first (RFC 9110 7.2), as h11 did;
        note the body's framing and whether the request asks to close the connection."""
        lengths: set[bytes] = set()
        codings: list[bytes] = []
        close = has_host = False
        lines: list[bytes] = []
        for name, value in raw:
            _checked(_TOKEN, name, "header name", request)
            _checked(_FIELD_VALUE, value, "header value", request, name)
            lower = name.lower()
            if lower == b"host":
                has_host = True
                lines.insert(0, b"%s: %s\r\n" % (name, value))
                continue
            lines.append(b"%s: %s\r\n" % (name, value))
            if lower == b"content-length":
                lengths.update(item.strip() for item in value.split(b","))
            elif lower == b"transfer-encoding":
                codings.append(value)
            elif lower == b"connection":
                close = close or b"close" in (t.strip().lower() for t in value.split(b","))
        if not has_host:
            raise httpx.LocalProtocolError("Missing mandatory Host: header", request=request)
        framing: int | None = None
        if codings:
            if lengths or len(codings) > 1 or codings[0].lower() != b"chunked":
                raise httpx.LocalProtocolError(
                    "Only Transfer-Encoding: chunked is supported, without Content-Length",
                    request=request,
                )
            framing = -1
        elif lengths:
            if len(lengths) > 1 or not next(iter(lengths)).isdigit():
                raise httpx.LocalProtocolError("conflicting Content-Length", request=request)
            framing = int(next(iter(lengths)))
        self._headers_raw = list(raw)
        self._headers_block = b"".join(lines) + b"\r\n"
        self._headers_framing = framing
        self._headers_close = close

    # --- the response head
    async def _read_head(
        self, conn: _Connection, exchange: _Exchange, timeout: float | None
    ) -> None:
        """Feed the answer's head to the parser up to its end (1xx heads skipped), counting
        it against `max_head` (llhttp does not); the bytes after it go on to the body."""
        data = await _read(conn, timeout)
        if not data:
            raise httpx.RemoteProtocolError(DISCONNECTED)
        size = 0  # head bytes so far, 1xx heads included
        tail = start = b""  # the current head's last 3 and first 7 bytes
        fed: list[bytes] = []  # the current head as fed (for _one_length only)
        while True:
            end = _head_end(tail, data)
            piece = data if end < 0 else data[:end]
            size += len(piece)
            if size > self._max_head:
                raise httpx.RemoteProtocolError(
                    f"the response head is larger than {self._max_head} bytes"
                )
            if len(start) < len(PROTOCOL):
                start = _check_start(start, piece)
            fed.append(piece)
            try:
                exchange.feed(piece)
            except _LengthList:
                data = await self._one_length(
                    conn, exchange, fed, data[len(piece) :], size, timeout
                )
                break
            if exchange.head_done:
                data = data[len(piece) :]
                break
            if end < 0:
                tail = (tail + data)[-3:]
            else:  # a 1xx head ended here: the next answer starts
                tail = start = b""
                fed = []
                data = data[end:]
                if data:
                    continue
            data = await _read(conn, timeout)
            if not data:
                raise httpx.RemoteProtocolError(DISCONNECTED)
        if exchange.head_request or exchange.complete:  # HEAD, 204, 304: no body
            exchange.complete = True
            exchange.extra = exchange.extra or bool(data)
        elif data:
            exchange.feed(data)

    async def _one_length(
        self,
        conn: _Connection,
        exchange: _Exchange,
        fed: list[bytes],
        rest: bytes,
        size: int,
        timeout: float | None,
    ) -> bytes:
        """Repeated Content-Length fields (the rare path): read the whole head, make them one
        (or refuse them), and parse it again with a new parser. Returns the bytes after it."""
        head = b"".join(fed) + rest
        while (end := head.find(HEAD_END)) < 0:
            more = await _read(conn, timeout)
            if not more:
                raise httpx.RemoteProtocolError(DISCONNECTED)
            head += more
            if size + len(head) > 2 * self._max_head:
                raise httpx.RemoteProtocolError(
                    f"the response head is larger than {self._max_head} bytes"
                )
        head, rest = head[: end + 4], head[end + 4 :]
        if size - len(b"".join(fed)) + len(head) > self._max_head:
            raise httpx.RemoteProtocolError(
                f"the response head is larger than {self._max_head} bytes"
            )
        exchange.restart()
        exchange.feed(_one_length(head))
        if not exchange.head_done:
            raise httpx.RemoteProtocolError("malformed response head")
        return rest

    # --- after the response
    def _finish(self, conn: _Connection, exchange: _Exchange, reusable: bool) -> None:
        """The body is done with: keep the connection for the next request, or close it."""
        if conn is self._conn:
            if not (reusable and exchange.reusable and not self._headers_close):
                self._drop()
        else:
            conn.close()
        self._lock.release()

    async def aclose(self) -> None:
        self._closed = True
        self._drop()


def _checked(
    pattern: re.Pattern[bytes],
    value: bytes,
    what: str,
    request: httpx.Request,
    name: bytes | None = None,
) -> bytes:
    """`value` if it matches; else LocalProtocolError naming what is wrong, never the value
    (a header value may be the credentials; a target may carry them in its query)."""
    if pattern.fullmatch(value) is None:
        where = "" if name is None else " of " + repr(name[:40])
        raise httpx.LocalProtocolError(
            f"Illegal characters in the request {what}{where}", request=request
        )
    return value


async def _write(
    conn: _Connection, data: bytes, timeout: float | None, request: httpx.Request
) -> None:
    try:
        await conn.write(data, timeout)
    except _ReadTimeoutSignal:
        raise httpx.WriteTimeout("timed out", request=request) from None
    except OSError as exc:
        raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc


async def _request_body(request: httpx.Request) -> AsyncIterator[bytes]:
    stream = request.stream
    if isinstance(stream, httpx.AsyncByteStream):
        async for chunk in stream:
            if chunk:
                yield chunk
    else:  # a ByteStream is both sync and async: iterate it without awaiting
        for chunk in stream:
            if chunk:
                yield chunk


class _Body(httpx.AsyncByteStream):
    """The response body as it comes; closing it gives the connection back (or closes it)."""

    def __init__(
        self,
        owner: Http11Transport,
        conn: _Connection,
        exchange: _Exchange,
        timeout: float | None,
    ) -> None:
        self._owner = owner
        self._conn = conn
        self._exchange = exchange
        self._timeout = timeout
        self._done = False  # the body was read to its end
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._done or self._closed:
            return
        exchange = self._exchange
        length = exchange.length
        if exchange.complete or (length is not None and length <= self._owner._one_read):
            body = await self._whole(exchange, length)
            if body:
                yield body
        else:
            while True:
                for piece in exchange.take_body():
                    yield piece
                if exchange.complete:
                    break
                data = await _read(self._conn, self._timeout)
                if data:
                    exchange.feed(data)
                elif exchange.length is None and not exchange.chunked:
                    exchange.complete = True  # close-delimited: EOF is its end
                    exchange.keep_alive = False
                else:
                    raise httpx.RemoteProtocolError(CUT_SHORT)
        self._done = True

    async def _whole(self, exchange: _Exchange, length: int | None) -> bytes:
        """The body in one piece: a Content-Length body read until it is all there and parsed
        once (or one that came whole with its head)."""
        if not exchange.complete:
            assert length is not None
            missing = length - sum(map(len, exchange.body))
            data = await _gather(self._conn, missing, self._timeout)
            if data:
                exchange.feed(data)
            if not exchange.complete:
                raise httpx.RemoteProtocolError(CUT_SHORT)
        pieces = exchange.take_body()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner._finish(self._conn, self._exchange, reusable=self._done)
