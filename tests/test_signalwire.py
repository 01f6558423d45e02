"""The API client over real loopback HTTP against the stand-in: retries, errors, auth."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from conftest import make_settings

from etl.errors import ApiError, AuthError, NotFoundError, TransientError, WalkError
from etl.fake_api import FakeSignalWire, by_id_view
from etl.signalwire import RatePacer, SignalWireClient


def get(api: FakeSignalWire, session_id: str, **overrides: Any) -> Any:
    return get_recording_waits(api, session_id, **overrides)[0]


def get_recording_waits(
    api: FakeSignalWire, session_id: str, **overrides: Any
) -> tuple[Any, list[float]]:
    """The body, and every wait the client asked for between attempts (none is slept)."""
    settings = make_settings(api, "sqlite://", **overrides)
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def go() -> Any:
        async with SignalWireClient(settings, sleep=record) as client:
            return await client.get_room_session(session_id)

    return asyncio.run(go()), waits


def path(session_id: str) -> str:
    return f"/api/video/room_sessions/{session_id}"


def test_get_returns_the_by_id_body(api: FakeSignalWire, sessions: list[dict[str, Any]]) -> None:
    session = sessions[0]
    assert get(api, session["id"]) == by_id_view(session)
    assert api.requests[path(session["id"])] == 1


def test_404_is_not_found_without_retry(api: FakeSignalWire) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(NotFoundError):
        get(api, unknown)
    assert api.requests[path(unknown)] == 1


def test_other_4xx_fails_without_retry(api: FakeSignalWire, sessions: list[dict]) -> None:
    session = sessions[5]
    api.script(session["id"], "422")
    with pytest.raises(ApiError) as info:
        get(api, session["id"])
    assert info.value.status == 422 and not isinstance(info.value, TransientError)
    assert api.requests[path(session["id"])] == 1


@pytest.mark.parametrize("fault", ["401", "403"])
def test_auth_refusal_names_the_variables(
    api: FakeSignalWire, sessions: list[dict], fault: str
) -> None:
    session = sessions[6]
    api.script(session["id"], fault)
    with pytest.raises(AuthError, match="SIGNALWIRE_API_TOKEN"):
        get(api, session["id"])
    assert api.requests[path(session["id"])] == 1


def test_wrong_token_is_an_auth_error(api: FakeSignalWire, sessions: list[dict]) -> None:
    with pytest.raises(AuthError) as info:
        get(api, sessions[0]["id"], api_token="wrong-token-xyz")
    assert "wrong-token-xyz" not in str(info.value)


def test_requests_carry_auth_accept_and_user_agent() -> None:
    import httpx

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"error": "Not Found"})

    settings = make_settings(_Base("https://example.signalwire.com"), "sqlite://")

    async def go() -> None:
        async with SignalWireClient(settings, transport=httpx.MockTransport(handler)) as client:
            with pytest.raises(NotFoundError):
                await client.get_room_session("c22d24f6-5a47-4597-9a23-c7d01e696b92")

    asyncio.run(go())
    request = seen[0]
    assert request.url == (
        "https://example.signalwire.com/api/video/room_sessions/"
        "c22d24f6-5a47-4597-9a23-c7d01e696b92"
    )
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"].startswith("roomsync/")
    assert request.headers["Authorization"].startswith("Basic ")


class _Base:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url


def _list_pages(handler: Any, into: list[list[Any]] | None = None) -> list[list[Any]]:
    """The pages of one walk; `into` receives them as they come (kept when the walk raises)."""
    import httpx

    settings = make_settings(_Base("https://example.signalwire.com"), "sqlite://")
    pages = [] if into is None else into

    async def go() -> list[list[Any]]:
        transport = httpx.MockTransport(handler)
        async with SignalWireClient(settings, transport=transport) as client:
            async for page in client.list_room_sessions(page_size=2):
                pages.append(page)
        return pages

    return asyncio.run(go())


def test_list_follows_next_until_it_repeats_then_says_so() -> None:
    import httpx

    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        next_link = "/api/video/room_sessions?page_number=1&page_size=2&page_token=PAx"
        return httpx.Response(200, json={"links": {"next": next_link}, "data": [{"n": 1}]})

    pages: list[list[Any]] = []
    with pytest.raises(WalkError, match="already read"):  # issue 22: a loop is not the end
        _list_pages(handler, into=pages)
    assert len(pages) == 2  # the first page, then the repeated next once
    assert calls[0].endswith("/api/video/room_sessions?page_size=2")
    assert calls[1].endswith("page_token=PAx")


def test_list_refuses_a_next_link_on_another_host() -> None:
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "example.signalwire.com"
        next_link = "https://evil.example.net/api/video/room_sessions?page_token=PAx"
        return httpx.Response(200, json={"links": {"next": next_link}, "data": []})

    with pytest.raises(ApiError, match="outside the space"):
        _list_pages(handler)


def test_list_page_without_data_is_an_error() -> None:
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"links": {}, "items": []})

    with pytest.raises(ApiError, match="data"):
        _list_pages(handler)


def test_loopback_names_are_one_origin_for_next_links() -> None:
    """A local stand-in may say `localhost` where the base URL says 127.0.0.1."""
    import httpx

    from etl.signalwire import _same_origin

    assert _same_origin(httpx.URL("http://localhost:8080/a"), httpx.URL("http://127.0.0.1:8080/"))
    assert _same_origin(httpx.URL("http://[::1]:8080/a"), httpx.URL("http://127.0.0.1:8080/"))
    assert not _same_origin(httpx.URL("http://localhost:8081/"), httpx.URL("http://127.0.0.1:8080"))
    assert not _same_origin(
        httpx.URL("http://example.signalwire.com/"), httpx.URL("https://example.signalwire.com/")
    )


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"9" * 5000])
def test_numbers_no_column_can_hold_decode_and_are_not_retried(number: bytes) -> None:
    """They are valid JSON syntax (or close to it): the body decodes, and etl.records refuses
    the session (tests/test_records.py), so that one such item costs one id, not a page."""
    import httpx

    calls: list[int] = []
    sid = "c22d24f6-5a47-4597-9a23-c7d01e696b92"

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, content=b'{"id": "%s", "extra": %s}' % (sid.encode(), number))

    settings = make_settings(_Base("https://example.signalwire.com"), "sqlite://", retries=2)

    async def go() -> Any:
        async with SignalWireClient(settings, transport=httpx.MockTransport(handler)) as client:
            return await client.get_room_session(sid)

    body = asyncio.run(go())
    assert not math.isfinite(body["extra"])
    assert len(calls) == 1


def test_a_body_that_is_not_json_is_retried() -> None:
    import httpx

    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, content=b'{"id": "c22d24f6-5a47-4597-9a2')

    settings = make_settings(_Base("https://example.signalwire.com"), "sqlite://", retries=2)

    async def go() -> None:
        async with SignalWireClient(settings, transport=httpx.MockTransport(handler)) as client:
            await client.get_room_session("c22d24f6-5a47-4597-9a23-c7d01e696b92")

    with pytest.raises(TransientError, match="not valid JSON"):
        asyncio.run(go())
    assert len(calls) == 2


# --------------------------------------------------------------------------- RatePacer


class FrozenClock:
    """A clock that only moves when the pacer sleeps, so each wait can be read exactly."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_rate_pacer_spaces_starts_by_the_interval() -> None:
    clock = FrozenClock()
    pacer = RatePacer(4.0, clock=clock, sleep=clock.sleep)

    async def go() -> None:
        await asyncio.gather(*(pacer.wait() for _ in range(5)))

    asyncio.run(go())
    # five starts at once: the first goes now, each next one a quarter second after the last
    assert clock.waits == [0.25, 0.5, 0.75, 1.0]


def test_rate_pacer_does_not_wait_when_requests_are_already_slower() -> None:
    clock = FrozenClock()
    pacer = RatePacer(2.0, clock=clock, sleep=clock.sleep)

    async def go() -> None:
        for _ in range(3):
            await pacer.wait()
            clock.now += 1.0  # each request takes a second, more than the 0.5 s interval

    asyncio.run(go())
    assert clock.waits == []
