"""One lean HTTP/1.1 keep-alive connection under httpx's transport interface (issue 21).

httpx stays the client API (auth, URLs, response types); below its transport interface httpcore
spent most of roomsync's CPU per request on machinery a lane does not need: a pool, anyio's
stream layers, locks and trace hooks around each step. `Http11Transport` is one connection on a
plain asyncio Protocol, parsed by h11 -- the same parser httpcore drives, so a hostile response
is judged exactly as httpx's own transport judges it (tests/test_transport.py runs the same
hostile tests against both).

What it keeps from httpx's transport, on purpose:
- timeouts per operation from the request's `timeout` extension: connect (TCP and TLS) is
  `ConnectTimeout`, waiting for a response byte `ReadTimeout`, a blocked write `WriteTimeout`;
  the whole-request deadline stays the caller's (etl/signalwire.py wraps each request in one);
- failures as httpx's exception types (ConnectError, ReadError, WriteError,
  RemoteProtocolError...), which the client's retry and unreachable rules key on;
- a kept-alive connection that the server closed while idle is noticed before it is reused
  (httpcore checks the same, `has_expired`) and replaced by a new one; one dropped as the
  request reaches it is an error, as there (the client's retry policy decides, and counts it);
- TLS through the SSLContext it is given (certificate and host name checked).

It does not read proxy variables: a run whose space goes through a proxy keeps httpx's own
transport (etl/signalwire.py decides). Bodies are streamed to the caller, which bounds them after
decompression (etl/bodies.py); a `Content-Length` body up to `one_read` bytes is handed over in
one piece.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import h11
import httpx

MAX_HEAD_BYTES = 100 * 1024  # status line and headers: httpcore's limit, so both refuse alike
READ_BUFFER_HIGH = 1 << 20  # stop reading the socket while this much waits unread
ONE_READ_DEFAULT = 8 << 20  # Content-Length bodies up to this size come in one piece


class _ReadTimeoutSignal(Exception):
    """A read or write waited longer than its timeout (mapped by the caller)."""


DISCONNECTED = "Server disconnected without sending a response."  # httpcore's words


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
        self.taken = 0  # bytes read since the last request was written
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
        self.taken += len(data)
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
        self.taken = 0  # what comes from now on answers this request
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


def _timeouts(request: httpx.Request) -> dict[str, float | None]:
    timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
    return timeouts


class Http11Transport(httpx.AsyncBaseTransport):
    """One HTTP/1.1 keep-alive connection, used by one request at a time (a lane).

    `ssl_context` verifies https origins (give the same context as httpx's own transport would
    use); `one_read` is the largest `Content-Length` body handed over in one piece (larger ones
    and chunked or close-delimited bodies stream in the pieces they arrive in).
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
        self._h11: h11.Connection | None = None
        self._origin: tuple[bytes, bytes, int] | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        # The request headers as h11 validated them last time: a client sends the same ones
        # with every request, so they are checked once, not per request.
        self._headers_raw: list[tuple[bytes, bytes]] | None = None
        self._headers_checked: Any = None

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
        conn, parser = await self._connection(request, timeouts.get("connect"))
        await self._write_request(conn, parser, request, timeouts.get("write"))
        event = await self._read_head(conn, parser, timeouts.get("read"))
        return httpx.Response(
            status_code=event.status_code,
            headers=event.headers.raw_items(),
            stream=_Body(self, conn, parser, event, timeouts.get("read"), request.method),
            extensions={
                "http_version": b"HTTP/" + event.http_version,
                "reason_phrase": event.reason,
            },
        )

    # --- connection
    async def _connection(
        self, request: httpx.Request, timeout: float | None
    ) -> tuple[_Connection, h11.Connection]:
        url = request.url
        scheme = url.raw_scheme
        if scheme not in (b"http", b"https"):
            raise httpx.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{url.scheme}://'."
            )
        if not url.raw_host:
            raise httpx.UnsupportedProtocol("Request URL is missing an 'http://' or 'https://'.")
        origin = (scheme, url.raw_host, url.port or (443 if scheme == b"https" else 80))
        conn, parser = self._conn, self._h11
        if conn is not None and parser is not None:
            if origin == self._origin and not conn.idle_readable:
                return conn, parser
            self._drop()  # closed by the server while idle, or another origin
        conn = await self._connect(request, origin, timeout)
        parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=self._max_head)
        self._conn, self._h11, self._origin = conn, parser, origin
        return conn, parser

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
        self._conn = self._h11 = None
        self._origin = None

    # --- request and response head
    async def _write_request(
        self,
        conn: _Connection,
        parser: h11.Connection,
        request: httpx.Request,
        timeout: float | None,
    ) -> None:
        try:
            head = parser.send(self._request_event(request))
            assert head is not None
            headers = request.headers
            if "content-length" in headers or "transfer-encoding" in headers:
                chunks = [head]
                async for chunk in _request_body(request):
                    data = parser.send(h11.Data(data=chunk))
                    if data:
                        chunks.append(data)
                head = b"".join(chunks)
            end = parser.send(h11.EndOfMessage())
            if end:
                head += end
            await conn.write(head, timeout)
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from exc
        except _ReadTimeoutSignal:
            raise httpx.WriteTimeout("timed out", request=request) from None
        except OSError as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc

    def _request_event(self, request: httpx.Request) -> h11.Request:
        """h11's Request event; headers equal to the last request's are not validated again
        (h11 takes its own validated Headers as they are). The target is always checked."""
        raw = request.headers.raw
        headers = self._headers_checked if raw == self._headers_raw else raw
        event = h11.Request(method=request.method, target=request.url.raw_path, headers=headers)
        if headers is raw:
            self._headers_raw, self._headers_checked = list(raw), event.headers
        return event

    async def _read_head(
        self, conn: _Connection, parser: h11.Connection, timeout: float | None
    ) -> h11.Response:
        while True:
            event = await _next_event(conn, parser, timeout)
            if isinstance(event, h11.Response):
                if conn.taken > self._max_head:  # h11 bounds only a head still incomplete
                    head_size = conn.taken - len(parser.trailing_data[0])
                    if head_size > self._max_head:
                        raise httpx.RemoteProtocolError(
                            f"the response head is larger than {self._max_head} bytes"
                        )
                return event
            if isinstance(event, h11.InformationalResponse):
                continue  # 100 Continue, 103 Early Hints: the answer is still to come
            if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError(DISCONNECTED)
            raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__} before a response")

    # --- after the response
    def _finish(self, conn: _Connection, reusable: bool) -> None:
        """The body is done with: keep the connection for the next request, or close it."""
        if conn is self._conn:
            parser = self._h11
            if reusable and parser is not None and _may_reuse(parser):
                parser.start_next_cycle()
            else:
                self._drop()
        else:
            conn.close()
        self._lock.release()

    async def aclose(self) -> None:
        self._closed = True
        self._drop()


def _may_reuse(parser: h11.Connection) -> bool:
    """Both messages complete and nothing after the response: bytes past its end mean the
    server framed it wrongly (a Content-Length shorter than what it sent)."""
    return (
        parser.our_state is h11.DONE
        and parser.their_state is h11.DONE
        and not parser.trailing_data[0]
    )


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


async def _next_event(conn: _Connection, parser: h11.Connection, timeout: float | None) -> Any:
    """h11's next event, reading the socket as it needs; errors as httpx's types."""
    try:
        while True:
            event = parser.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await conn.read(timeout)
            if not data and parser.their_state is h11.SEND_RESPONSE:
                raise httpx.RemoteProtocolError(DISCONNECTED)
            parser.receive_data(data)  # b"" tells h11 the peer closed
    except h11.RemoteProtocolError as exc:
        raise httpx.RemoteProtocolError(str(exc)) from exc
    except _ReadTimeoutSignal:
        raise httpx.ReadTimeout("timed out") from None
    except OSError as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__) from exc


class _Body(httpx.AsyncByteStream):
    """The response body as it comes; closing it gives the connection back (or closes it)."""

    def __init__(
        self,
        owner: Http11Transport,
        conn: _Connection,
        parser: h11.Connection,
        head: h11.Response,
        timeout: float | None,
        method: str,
    ) -> None:
        self._owner = owner
        self._conn = conn
        self._parser = parser
        self._timeout = timeout
        self._length = None if method == "HEAD" else _content_length(head)
        self._complete = False
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._complete or self._closed:
            return
        conn, parser, timeout = self._conn, self._parser, self._timeout
        length = self._length
        if length is not None and length <= self._owner._one_read:
            body = await self._read_length(length)
            if body:
                yield body
            return
        while True:
            event = await _next_event(conn, parser, timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._complete = True
                return
            else:
                raise httpx.RemoteProtocolError("Server disconnected before the body ended.")

    async def _read_length(self, length: int) -> bytes:
        """A Content-Length body in one piece: read until it is all there, parse once."""
        conn, parser, timeout = self._conn, self._parser, self._timeout
        pieces: list[bytes] = []
        got = 0
        while True:
            event = await _next_event(conn, parser, timeout)
            if isinstance(event, h11.Data):
                pieces.append(bytes(event.data))
                got += len(event.data)
                missing = length - got
                if missing > 0:  # gather the rest before h11 parses it
                    gathered = await _gather(conn, missing, timeout)
                    parser.receive_data(gathered)
                    if len(gathered) < missing:
                        parser.receive_data(b"")  # EOF: h11 reports the body cut short
            elif isinstance(event, h11.EndOfMessage):
                self._complete = True
                return pieces[0] if len(pieces) == 1 else b"".join(pieces)
            else:
                raise httpx.RemoteProtocolError("Server disconnected before the body ended.")

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner._finish(self._conn, reusable=self._complete)


async def _gather(conn: _Connection, want: int, timeout: float | None) -> bytes:
    """At least `want` bytes from the socket, or fewer at EOF (errors as httpx's types)."""
    pieces: list[bytes] = []
    got = 0
    try:
        while got < want:
            data = await conn.read(timeout)
            if not data:
                break
            pieces.append(data)
            got += len(data)
    except _ReadTimeoutSignal:
        raise httpx.ReadTimeout("timed out") from None
    except OSError as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
    return b"".join(pieces)


def _content_length(head: h11.Response) -> int | None:
    """The body's declared length when h11 frames it by Content-Length (not chunked, not
    a status without a body); h11 has already refused a malformed or conflicting value."""
    if head.status_code in (204, 304):
        return None
    length: int | None = None
    for name, value in head.headers:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            length = int(value)
    return length
