"""The SignalWire Video REST API client: with etl/bodies.py, the only code that knows HTTP.

One coroutine call per room session id, with Basic auth and retries on what a retry can fix
(429, 500/502/503/504, connection errors, timeouts, bodies cut short or not JSON); the policy
(Retry-After, backoff, when to give up) is etl/retry.py's.

Bounds: `timeout` covers a whole request, from connect to the last byte (a body dripped a byte
at a time cannot hold a run); a body over `max_body` bytes after decompression fails its id
unread; a list walk ends after `max_pages` pages, or when pages stop bringing anything new.
When the API has never answered at all (connection refused, unknown host, TLS failure, or a
server that accepts the connection and then says nothing until the timeout: no TLS handshake, no
response headers), the run stops with a configuration error instead of failing every id in turn.
A server that has answered once in the run and then goes silent is a transient failure: retried.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState

from . import __version__
from .bodies import check_length, decode_json, read_bounded, read_prefix
from .config import ENV_PROJECT, ENV_SPACE, ENV_TOKEN, Settings, is_loopback_host, proxy_for
from .errors import (
    ApiError,
    AuthError,
    NotFoundError,
    RoomsyncError,
    SilentServerError,
    StoppedError,
    TransientError,
    UnreachableError,
    WalkError,
)
from .idset import SeenValues
from .retry import RETRY_STATUSES, Sleep, parse_retry_after, retry_kind, retrying
from .transport import ONE_READ_DEFAULT, Http11Transport

SESSION_PATH = "/api/video/room_sessions"
ROOMS_PATH = "/api/video/rooms"
LOGS_PATH = "/api/video/logs"
MAX_PAGES_WITHOUT_NEWS = 3  # consecutive list pages that bring no new id end a walk
ERROR_BODY_BYTES = 64 * 1024  # read of an error body, for its message
# Failures that mean "no server answers there" when nothing has ever answered.
UNREACHABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol)
# Timeouts that, before any response of the run, mean "a server that never answers": connect
# or TLS handshake (ConnectTimeout), or no response headers (ReadTimeout before any response).
SILENT = (httpx.ConnectTimeout, httpx.ReadTimeout)
# A session id made only of unreserved characters (RFC 3986), not a dot segment: its URL is the
# precomputed prefix plus the id, unparsed. Any other id goes through httpx's URL parser.
PLAIN_ID = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9._~-]+")

log = logging.getLogger(__name__)
# httpx's own logger: its client logs each request at INFO (shown with -v); requests sent
# straight to the transport log the same line here.
httpx_log = logging.getLogger("httpx")


@dataclass
class ClientStats:
    """What a client saw: responses by HTTP status (`error` for no response at all), the retries
    it made and how many 429s it got. One object may be shared by the caller to read it even
    after a run that ended in an error."""

    requests: Counter[str] = field(default_factory=Counter)
    retries: int = 0

    @property
    def throttled(self) -> int:
        return self.requests["429"]


def _session_id_of(url: str) -> str | None:
    """The session a URL is about (by id, or its members or recordings), if any."""
    path = httpx.URL(url).path
    prefix = f"{SESSION_PATH}/"
    return path[len(prefix) :].partition("/")[0] if path.startswith(prefix) else None


_LISTS = {SESSION_PATH: "the list", ROOMS_PATH: "the rooms list", LOGS_PATH: "the video logs"}


def _what(url: str) -> str:
    """What a retried request was for, in a log line: a session, its detail, or a list."""
    path = httpx.URL(url).path
    session_id = _session_id_of(url)
    if session_id is None:
        return _LISTS.get(path, "the list")
    detail = path.partition(f"{session_id}/")[2]
    return f"the {detail} of session {session_id}" if detail else f"session {session_id}"


class RatePacer:
    """Spaces request starts at least 1/rate seconds apart, across all workers.

    Each caller reserves the next free start under the lock and sleeps outside it, so waiting
    workers do not hold each other up beyond their slot.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()
        self._clock = clock
        self._sleep = sleep

    async def wait(self) -> None:
        async with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await self._sleep(start - now)


def error_message(content: bytes, reason_phrase: str) -> str:
    """The most useful message in an error body, whatever its shape."""
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            messages = [str(e["message"]) for e in errors if isinstance(e, dict) and "message" in e]
            if messages:
                return "; ".join(messages)[:500]
        if body.get("error"):
            return str(body["error"])[:500]
    text = content.decode("utf-8", "replace").strip()
    return text[:200] if text else reason_phrase


def _auth_message(status: int) -> str:
    return (
        f"the API refused the credentials (HTTP {status}): check {ENV_PROJECT}, "
        f"{ENV_TOKEN} (it needs the Video scope) and {ENV_SPACE}"
    )


class LaneTransport(httpx.AsyncBaseTransport):
    """`size` lanes of one keep-alive connection each; every request takes a free lane.

    httpcore's connection pool walks all of its connections, checking each one's socket, for
    every request it assigns (encode/httpx#3215): at 20 connections that was most of the client's
    CPU per request. A pool of one connection has nothing to walk. At most `size` requests are
    in flight, as with the shared pool's `max_connections`; waiting for a lane is bounded by the
    request's pool timeout (httpx.PoolTimeout), as it was there. The lanes share one TLS context.
    Each lane is an etl.transport.Http11Transport (issue 21); `one_read` is the largest
    Content-Length body a lane hands over in one piece (the client passes --max-body).
    """

    def __init__(self, size: int, one_read: int = ONE_READ_DEFAULT) -> None:
        ssl_context = httpx.create_ssl_context()
        self._lanes = [Http11Transport(ssl_context, one_read=one_read) for _ in range(size)]
        self._free = list(self._lanes)
        self._slots = asyncio.Semaphore(size)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._slots.locked():  # every lane busy: wait, as long as the pool timeout allows
            pool_timeout = request.extensions.get("timeout", {}).get("pool")
            try:
                async with asyncio.timeout(pool_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no free connection", request=request) from None
        else:
            await self._slots.acquire()
        lane = self._free.pop()
        try:
            response = await lane.handle_async_request(request)
        except BaseException:
            self._release(lane)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)  # an async transport's body
        response.stream = _ReleasingStream(response.stream, self, lane)
        return response

    def _release(self, lane: Http11Transport) -> None:
        self._free.append(lane)
        self._slots.release()

    @property
    def idle(self) -> int:
        """Lanes free for a request now."""
        return len(self._free)

    async def aclose(self) -> None:
        for lane in self._lanes:
            await lane.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives its lane back once closed (httpx closes every response)."""

    def __init__(
        self, stream: httpx.AsyncByteStream, transport: LaneTransport, lane: Http11Transport
    ) -> None:
        self._stream = stream
        self._transport: LaneTransport | None = transport
        self._lane = lane

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()  # the lane's own body, without another generator

    async def aclose(self) -> None:
        transport, self._transport = self._transport, None
        try:
            await self._stream.aclose()
        finally:
            if transport is not None:
                transport._release(self._lane)


class Deadlines:
    """The one deadline of every request in flight, kept by one timer for all of them.

    `asyncio.timeout` per request builds a Timeout and schedules (then cancels) a timer handle
    every time. Here a request costs a dict entry: every request has the same timeout, so
    deadlines come in the order requests start, and the oldest request in flight holds the
    earliest one. One timer waits for that deadline; when it fires it cancels the requests
    past theirs and waits for the next oldest. A request whose deadline passed ends with
    TimeoutError, as in `asyncio.timeout`: the task's cancellation is withdrawn, and a
    cancellation from elsewhere at the same time (a second signal) stays a cancellation.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._in_flight: dict[int, tuple[float, asyncio.Task[Any]]] = {}  # by start: deadline
        self._expired: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the timer's
        self._next_key = 0

    async def run(self, call: Awaitable[Any]) -> Any:
        """Await `call` within the timeout; TimeoutError once it has passed."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        key = self._next_key
        self._next_key = key + 1
        deadline = loop.time() + self.timeout
        self._in_flight[key] = (deadline, task)
        if self._timer is None or self._loop is not loop:
            self._loop = loop
            self._timer = loop.call_at(deadline, self._fire, loop)
        cancelling = task.cancelling()
        try:
            result = await call
        except asyncio.CancelledError as exc:
            if self._end(key) and task.uncancel() <= cancelling:
                raise TimeoutError from exc  # ours alone: the deadline passed
            raise
        except BaseException:
            if self._end(key):
                task.uncancel()
            raise
        if self._end(key):  # cancelled, but it ended before the cancellation reached it
            task.uncancel()
        return result

    def _end(self, key: int) -> bool:
        """The request `key` is over: whether its deadline had passed (its task cancelled)."""
        del self._in_flight[key]
        if key in self._expired:
            self._expired.discard(key)
            return True
        return False

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel every request past its deadline; wait for the next one's."""
        self._timer = None
        now = loop.time()
        for key, (deadline, task) in list(self._in_flight.items()):
            if deadline > now:
                self._timer = loop.call_at(deadline, self._fire, loop)
                return
            if key not in self._expired:
                self._expired.add(key)
                task.cancel()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class SignalWireClient:
    """Async client for room sessions; use as `async with SignalWireClient(settings) as c`.

    `sleep` waits between attempts (the pipeline passes one that a signal cuts short; tests pass
    one that records the waits); `should_stop` is asked before every retry: once it is true, no
    further request is sent for that id.
    """

    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        should_stop: Callable[[], bool] | None = None,
        sleep: Sleep = asyncio.sleep,
        stats: ClientStats | None = None,
    ) -> None:
        self.settings = settings
        self._should_stop = should_stop or (lambda: False)
        self._sleep = sleep
        self._answered = False  # has any request ever got an HTTP response?
        self.answered_ok = False  # has any request got a 200: is this really the API?
        self._api_confirmed: bool | None = None
        self.stats = ClientStats() if stats is None else stats
        if transport is None and not proxy_for(settings.base_url):
            transport = LaneTransport(settings.concurrency, one_read=settings.max_body)
        timeout = settings.timeout
        self._http = httpx.AsyncClient(
            # A transport given here never reads proxy variables; for a loopback space say so
            # outright too (nor .netrc, nor SSL_CERT_* variables).
            trust_env=not is_loopback_host(httpx.URL(settings.base_url).host),
            base_url=settings.base_url,
            headers={
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",  # what etl.bodies can decode in bounds
                "User-Agent": f"roomsync/{__version__}",
                # Basic auth as a default header: every request carries it without an auth flow
                # per request (httpx masks it in reprs as it does any Authorization header).
                "Authorization": _basic(settings.project_id, settings.api_token),
            },
            # One deadline per request, the whole request's (_get_once): no per-read timeout.
            # The connect timeout is per connection, not per request; the pool timeout bounds
            # only a wait for a free lane, which the pipeline's concurrency never makes.
            timeout=httpx.Timeout(None, connect=timeout, pool=timeout),
            limits=httpx.Limits(
                max_connections=settings.concurrency,
                max_keepalive_connections=settings.concurrency,
            ),
            transport=transport,
        )
        # Sent straight to the transport: the client's send (auth flow, cookie jar, event
        # hooks, redirects) does nothing this client needs. A proxied run (transport None) keeps
        # the client's send, which routes through the proxy transport.
        self._send: Callable[[httpx.Request], Awaitable[httpx.Response]] = (
            partial(self._http.send, stream=True)
            if transport is None
            else transport.handle_async_request
        )
        self._log_requests = transport is not None  # the client's send logs its own
        self._template = _RequestTemplate(self._http, f"{SESSION_PATH}/")
        self._pacer = RatePacer(settings.rate_limit, sleep=sleep) if settings.rate_limit else None
        self._deadlines = Deadlines(settings.timeout)

    async def __aenter__(self) -> SignalWireClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._deadlines.close()
        await self._http.aclose()

    def _retrying(self, url: str = "") -> AsyncRetrying:
        return retrying(
            attempts=self.settings.retries,
            backoff=self.settings.backoff,
            max_retry_after=self.settings.max_retry_after,
            should_stop=self._should_stop,
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(state, url),
        )

    def _log_retry(self, state: RetryCallState, url: str) -> None:
        """One WARNING line per retry: what failed, which attempt, how long until the next."""
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome is not None else None
        kind = retry_kind(exc)
        wait_s = round(state.upcoming_sleep, 3)
        session_id = _session_id_of(url)
        what = _what(url)
        status = exc.status if isinstance(exc, TransientError) else None
        fields: dict[str, Any] = {
            "status": status if status is not None and status != 200 else kind,
            "attempt": state.attempt_number,
            "wait_s": wait_s,
        }
        if session_id:
            fields["session_id"] = session_id
        log.warning(
            "retrying %s after %s (attempt %d of %d failed), waiting %.2fs",
            what,
            kind,
            state.attempt_number,
            self.settings.retries,
            wait_s,
            extra=fields,
        )

    async def get_json(self, url: str, params: dict[str, Any] | None = None) -> Any:
        """GET a URL (relative to the base or absolute) with retries; return the decoded JSON.

        Failing to connect at all, before the API has ever answered, is an UnreachableError.
        """
        target = self._http.build_request("GET", url, params=params).url
        return await self._get(self._template.request(target), url)

    async def _get(self, request: httpx.Request, label: str) -> Any:
        """Send `request` with retries; `label` names it in retry logs (a path, for a session
        id). A request is never changed by sending it: a retry sends the same one again."""
        try:
            return await self._get_with_retries(request, label)
        except TransientError as exc:
            never = isinstance(exc, SilentServerError) or isinstance(exc.__cause__, UNREACHABLE)
            if not self._answered and never:
                raise UnreachableError(
                    f"cannot reach the API at {self.settings.base_url} ({exc}): check {ENV_SPACE}"
                ) from None
            raise

    async def _get_with_retries(self, request: httpx.Request, label: str) -> Any:
        """The first attempt runs bare; the retry policy is built only once it has failed, and
        its first attempt re-raises that failure, so tenacity counts, waits and logs as if it
        had made it itself."""
        try:
            return await self._get_once(request)
        except TransientError as exc:
            previous: TransientError | None = exc
        first = previous
        async for attempt in self._retrying(label):
            with attempt:
                if first is not None:
                    failed, first = first, None
                    raise failed
                if self._should_stop():
                    # The signal came during the wait: the retry is not sent.
                    raise StoppedError(f"stopped before retrying after {previous}")
                try:
                    return await self._get_once(request)
                except TransientError as exc:
                    previous = exc
                    raise
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def is_the_api(self) -> bool:
        """Whether the server really is the room sessions API, so that its 404 means "no such
        session": yes once any request got a 200; else one small list request decides (once a
        run). A wrong path in SIGNALWIRE_SPACE, or a proxy, answers 404 to everything."""
        if self.answered_ok:
            return True
        if self._api_confirmed is None:
            try:
                body = await self.get_json(SESSION_PATH, {"page_size": 1})
                self._api_confirmed = isinstance(body, dict) and isinstance(body.get("data"), list)
            except RoomsyncError:
                self._api_confirmed = False
        return self._api_confirmed

    async def get_room_session(self, session_id: str) -> Any:
        """The room session's JSON as the API returns it; raises NotFoundError for a 404."""
        if PLAIN_ID.fullmatch(session_id):
            request = self._template.session_request(session_id)
            return await self._get(request, f"{SESSION_PATH}/{session_id}")
        return await self.get_json(f"{SESSION_PATH}/{session_id}")

    async def list_room_sessions(
        self, page_size: int = 1000, **filters: str
    ) -> AsyncIterator[list[Any]]:
        """Yield the `data` of each page of the session list (see `list_pages`)."""
        async for page in self.list_pages(SESSION_PATH, {"page_size": page_size, **filters}):
            yield page

    async def list_members(
        self, session_id: str, page_size: int = 1000
    ) -> AsyncGenerator[list[Any], None]:
        """The pages of a session's members (attendance intervals)."""
        async for page in self.list_pages(
            f"{SESSION_PATH}/{session_id}/members", {"page_size": page_size}
        ):
            yield page

    async def list_recordings(
        self, session_id: str, page_size: int = 1000
    ) -> AsyncGenerator[list[Any], None]:
        """The pages of a session's recordings (their temporary `uri` is dropped by the parser)."""
        async for page in self.list_pages(
            f"{SESSION_PATH}/{session_id}/recordings", {"page_size": page_size}
        ):
            yield page

    async def list_rooms(self, page_size: int = 1000) -> AsyncGenerator[list[Any], None]:
        async for page in self.list_pages(ROOMS_PATH, {"page_size": page_size}):
            yield page

    async def list_logs(
        self, created_after: str | None = None, page_size: int = 1000
    ) -> AsyncGenerator[list[Any], None]:
        """The pages of the video logs, deleted entries included (`include_deleted=true`: the
        one documented signal of a deletion), created after `created_after` when given."""
        params: dict[str, Any] = {"page_size": page_size, "include_deleted": "true"}
        if created_after is not None:
            params["created_after"] = created_after
        async for page in self.list_pages(LOGS_PATH, params):
            yield page

    async def list_pages(
        self, path: str, params: dict[str, Any]
    ) -> AsyncGenerator[list[Any], None]:
        """Yield the `data` of each page of the list at `path`, following `links.next` as given.

        `next` may be an absolute URL or a path relative to the space; paging ends when it is
        absent, null or empty. A walk cannot end early without saying so (a sync would take a
        short list for the whole one): a `next` that is not a string, or that names a page
        already read in this walk (the first one included), is a WalkError, raised after the
        page that carried it was yielded. So is a walk longer than `max_pages` pages, or whose
        pages stop bringing any id not seen before in it: the server would never let it end.
        A `next` on another origin is refused: following it would send the credentials there.
        """
        url = self._http.build_request("GET", path, params=params).url
        body = await self.get_json(path, params)
        read: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {_page_key(url): 1}
        ids = SeenValues()  # every id listed: 16 bytes each (a first sync lists them all)
        pages = 1
        without_news = 0
        while True:
            data, raw_next = _page_parts(body)
            before = len(ids)
            ids.update(item.get("id") for item in data if isinstance(item, dict))
            without_news = without_news + 1 if len(ids) == before else 0
            yield data
            next_link = _next_link(raw_next, pages)
            if next_link is None:
                return
            if without_news >= MAX_PAGES_WITHOUT_NEWS:
                raise WalkError(
                    f"the list returned {without_news} pages in a row with nothing new, each "
                    "with another links.next; the walk was ended"
                )
            if pages >= self.settings.max_pages:
                raise WalkError(
                    f"the list has more than {self.settings.max_pages} pages (--max-pages); "
                    "the walk was ended"
                )
            target = self._http.base_url.join(next_link)
            if not _same_origin(target, self._http.base_url):
                raise ApiError(f"links.next points outside the space ({target.host}); not followed")
            earlier = read.get(_page_key(target))
            if earlier is not None:
                raise WalkError(
                    f"links.next of page {pages} points back to page {earlier}, already read in "
                    "this walk: the list loops; the walk was ended"
                )
            pages += 1
            read[_page_key(target)] = pages
            body = await self.get_json(str(target))

    async def _get_once(self, request: httpx.Request) -> Any:
        if self._pacer is not None:
            await self._pacer.wait()
        if self._should_stop():
            raise StoppedError("stopped before sending the request")
        timeout = self.settings.timeout
        try:  # the request's one deadline, connect to last byte
            return await self._deadlines.run(self._request(request))
        except TimeoutError:
            self.stats.requests["error"] += 1  # no complete answer (a status that came is counted)
            if not self._answered:  # not even this request's headers came
                raise SilentServerError(
                    f"nothing answered within --timeout {timeout:g}s, not even the headers"
                ) from None
            raise TransientError(f"no complete answer within --timeout {timeout:g}s") from None
        except httpx.TransportError as exc:
            self.stats.requests["error"] += 1
            error = SilentServerError if isinstance(exc, SILENT) and not self._answered else None
            raise (error or TransientError)(f"{type(exc).__name__}: {exc}") from exc

    async def _request(self, request: httpx.Request) -> Any:
        """One GET, its body read within the bounds; the JSON of a 200, else an error."""
        max_body = self.settings.max_body
        response = await self._send(request)
        # The raw bytes as the transport gives them (a response built in memory gives its
        # content as it was given): etl.bodies undoes the encoding within bounds.
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        try:
            self._answered = True
            status = response.status_code
            if self._log_requests and httpx_log.isEnabledFor(logging.INFO):
                httpx_log.info(
                    'HTTP Request: %s %s "%s %d %s"',
                    request.method,
                    request.url,
                    response.http_version,
                    status,
                    response.reason_phrase,
                )
            self.stats.requests[str(status)] += 1
            headers = response.headers
            encoding = headers.get("Content-Encoding", "")
            if status != 200:
                content = await _error_body(stream, headers.get("Content-Length"), encoding)
                detail = error_message(content, response.reason_phrase)
                raise _status_error(status, response, detail)
            self.answered_ok = True
            check_length(headers.get("Content-Length"), encoding, max_body)
            content = await read_bounded(stream, encoding, max_body)
        finally:
            # Gives the lane back (or closes a connection not read out). What Response.aclose
            # does, without its per-call context manager; the response is not used after this.
            await stream.aclose()
        return decode_json(content)


async def _error_body(
    stream: httpx.AsyncByteStream, content_length: str | None, encoding: str
) -> bytes:
    """An error body, for its message: one read of at most ERROR_BODY_BYTES. A body declared
    longer is not read at all (its connection is closed, not drained): the status says it."""
    if content_length is not None and encoding in ("", "identity"):
        try:
            if int(content_length) > ERROR_BODY_BYTES:
                return b""
        except ValueError:
            pass
    return await read_prefix(stream, encoding, ERROR_BODY_BYTES)


def _basic(user: str, password: str) -> str:
    """The Authorization header of HTTP Basic auth, as httpx.BasicAuth builds it."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class _RequestTemplate:
    """Every request of a client is the same GET with another URL: one httpx.Request, built by
    the client once (its headers merged, Host set, the timeout extension), copied per request
    with the URL replaced -- a shallow copy, since nothing below changes a request. A URL on
    another origin (a list link naming the space as `localhost`) is built by the client.

    Session URLs are the space's prefix plus the id: for a plain id (PLAIN_ID) the URL is made
    from the parsed prefix without parsing again, checked at start against httpx's own parse
    (a future httpx with other internals falls back to parsing each URL)."""

    def __init__(self, client: httpx.AsyncClient, path_prefix: str) -> None:
        self._client = client
        self._request = client.build_request("GET", path_prefix + "x")
        url = self._request.url
        self._origin = (url.raw_scheme, url.raw_host, url.port)
        self._prefix = str(url)[:-1]
        self._reference: Any = getattr(url, "_uri_reference", None)
        self._path = url.path[:-1]
        self._fast = False
        try:
            probe = "c22d24f6-5a47-4597-9a23-c7d01e696b92"
            self._fast = self._unparsed(probe) == httpx.URL(self._prefix + probe)
        except Exception:  # noqa: BLE001 - any change of httpx's internals: parse instead
            self._fast = False

    def _unparsed(self, session_id: str) -> httpx.URL:
        url = httpx.URL.__new__(httpx.URL)
        url._uri_reference = self._reference._replace(path=self._path + session_id)
        return url

    def url(self, session_id: str) -> httpx.URL:
        """The URL of a plain session id (PLAIN_ID)."""
        if self._fast:
            return self._unparsed(session_id)
        return httpx.URL(self._prefix + session_id)

    def request(self, url: httpx.URL) -> httpx.Request:
        if (url.raw_scheme, url.raw_host, url.port) != self._origin:
            return self._client.build_request("GET", url)
        return self._copy(url)

    def session_request(self, session_id: str) -> httpx.Request:
        """The request for a plain session id (PLAIN_ID): the space's own origin, unchecked."""
        return self._copy(self.url(session_id))

    def _copy(self, url: httpx.URL) -> httpx.Request:
        request = httpx.Request.__new__(httpx.Request)
        request.__dict__.update(self._request.__dict__)
        request.url = url
        return request


def _status_error(status: int, response: httpx.Response, detail: str) -> RoomsyncError:
    """The error for a non-200 answer: what it means for the id and for the run."""
    message = f"HTTP {status}: {detail}"
    if status in (401, 403):
        return AuthError(_auth_message(status))
    if status == 404:
        return NotFoundError(message, status)
    if status in RETRY_STATUSES:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return TransientError(message, status, retry_after)
    return ApiError(message, status)


def _page_parts(body: Any) -> tuple[list[Any], Any]:
    """(data, links.next as sent) of a list page; a body of another shape is an ApiError."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ApiError("the list response has no `data` array")
    links = body.get("links")
    return body["data"], links.get("next") if isinstance(links, dict) else None


def _next_link(raw: Any, page: int) -> str | None:
    """The link to the page after `page`; None at the end (no `next`, null or empty). Any other
    value than a string is a WalkError: the list does not say where it goes on."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise WalkError(
            f"links.next of page {page} is not a string ({type(raw).__name__}); the walk was ended"
        )
    return raw


def _page_key(url: httpx.URL) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What names a list page: its path and its query parameters in any order (the origin is
    the space's, checked before a link is followed)."""
    return url.path, tuple(sorted(url.params.multi_items()))


# The names of this machine's own loopback host. Other 127.0.0.0/8 addresses are other hosts
# as far as credentials go: a server may listen on 127.0.0.2 that is not the space.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port), with localhost, 127.0.0.1 and ::1 folded into one (a local
    stand-in may write its links with either); 127.0.0.2 and the rest of 127/8 are not."""
    host = url.host.lower().rstrip(".")
    return url.scheme, "<loopback>" if host in LOOPBACK_NAMES else host, url.port


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return _origin(a) == _origin(b)
