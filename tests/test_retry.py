"""The retry policy (etl/retry.py): on its own, and through the client over real loopback HTTP
against the stand-in (what is retried, Retry-After in both forms, capped, backoff with jitter,
giving up after the attempts or once the run is stopping)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from conftest import make_settings
from tenacity import RetryCallState, wait_fixed
from test_signalwire import get, get_recording_waits, path

from etl.errors import ApiError, NotFoundError, TransientError
from etl.fake_api import FakeSignalWire, by_id_view
from etl.retry import RetryAfterWait, parse_retry_after, retry_kind, retrying
from etl.signalwire import SignalWireClient


@pytest.mark.parametrize(
    "fault", ["429", "429:0", "500", "502", "503", "504", "reset", "badjson", "truncate"]
)
def test_transient_faults_are_retried_until_success(
    api: FakeSignalWire, sessions: list[dict[str, Any]], fault: str
) -> None:
    session = sessions[1]
    api.script(session["id"], fault, fault)
    assert get(api, session["id"]) == by_id_view(session)
    assert api.requests[path(session["id"])] == 3


def test_retry_after_seconds_is_honoured(api: FakeSignalWire, sessions: list[dict]) -> None:
    session = sessions[2]
    api.script(session["id"], "429:7")
    body, waits = get_recording_waits(api, session["id"])
    assert body["id"] == session["id"]
    assert waits == [7.0]


def test_retry_after_http_date_is_honoured(api: FakeSignalWire, sessions: list[dict]) -> None:
    session = sessions[2]
    api.script(session["id"], "429:date:5")
    body, waits = get_recording_waits(api, session["id"])
    assert body["id"] == session["id"]
    # An HTTP date has whole-second precision: it asks for somewhere between 4 and 5 seconds.
    (wait,) = waits
    assert 3.5 <= wait <= 5.0


def test_retry_after_is_capped(api: FakeSignalWire, sessions: list[dict]) -> None:
    session = sessions[2]
    api.script(session["id"], "429:3600")
    body, waits = get_recording_waits(api, session["id"], max_retry_after=0.2)
    assert body["id"] == session["id"]
    assert waits == [0.2]


def test_without_a_hint_the_waits_back_off_exponentially_with_jitter(
    api: FakeSignalWire, sessions: list[dict]
) -> None:
    session = sessions[2]
    api.script(session["id"], "503", "429:0", "500")
    body, waits = get_recording_waits(api, session["id"], backoff=1.0, retries=4)
    assert body["id"] == session["id"]
    # 1, 2, 4 seconds (doubling from --backoff), each plus up to --backoff of jitter
    assert [int(w) for w in waits] == [1, 2, 4]
    assert all(0 <= w - base <= 1.0 for w, base in zip(waits, [1, 2, 4], strict=True))


def test_no_retry_is_sent_once_the_run_is_stopping(
    api: FakeSignalWire, sessions: list[dict]
) -> None:
    session = sessions[2]
    api.script(session["id"], "503", "503")
    settings = make_settings(api, "sqlite://")
    stopping = False

    async def signal_arrives_during_the_wait(seconds: float) -> None:
        nonlocal stopping
        stopping = True

    async def go() -> Any:
        client = SignalWireClient(
            settings, should_stop=lambda: stopping, sleep=signal_arrives_during_the_wait
        )
        async with client:
            return await client.get_room_session(session["id"])

    with pytest.raises(ApiError, match="stopped before retrying after HTTP 503"):
        asyncio.run(go())
    assert api.requests[path(session["id"])] == 1


def test_retries_give_up_after_the_attempts(api: FakeSignalWire, sessions: list[dict]) -> None:
    session = sessions[3]
    api.script(session["id"], *["503"] * 10)
    with pytest.raises(TransientError, match="503"):
        get(api, session["id"], retries=3)
    assert api.requests[path(session["id"])] == 3


def test_slow_response_times_out_and_is_retried(api: FakeSignalWire, sessions: list[dict]) -> None:
    session = sessions[4]
    api.script(session["id"], "slow:2")
    assert get(api, session["id"], timeout=0.3)["id"] == session["id"]
    assert api.requests[path(session["id"])] == 2


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ahead = format_datetime(now + timedelta(seconds=30), usegmt=True)
    behind = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after("7", now.timestamp()) == 7
    assert parse_retry_after(ahead, now.timestamp()) == pytest.approx(30)
    for no_hint in (None, "", "0", "-5", behind, "soon"):
        assert parse_retry_after(no_hint, now.timestamp()) is None


def test_zero_retry_after_falls_back_to_backoff() -> None:
    """A Retry-After of 0 must not make the retries spin at once (a known bug elsewhere)."""
    wait = RetryAfterWait(wait_fixed(0.7), cap=60)
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.set_exception((TransientError, TransientError("429", 429, None), None))
    assert wait(state) == 0.7
    state.set_exception((TransientError, TransientError("429", 429, 5.0), None))
    assert wait(state) == 5.0


def attempts_of(error: BaseException, *, attempts: int = 3, stop_after: int | None = None) -> int:
    """How many times the policy calls an attempt that always raises `error` (no real sleep)."""
    calls = 0
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def go() -> None:
        nonlocal calls
        policy = retrying(
            attempts=attempts,
            backoff=0.01,
            max_retry_after=60,
            should_stop=lambda: stop_after is not None and calls >= stop_after,
            sleep=sleep,
            before_sleep=lambda state: None,
        )
        async for attempt in policy:
            with attempt:
                calls += 1
                raise error

    with pytest.raises(type(error)):
        asyncio.run(go())
    assert len(waits) == calls - 1  # a wait between attempts, none after the last
    return calls


def test_the_policy_retries_transient_errors_up_to_the_attempts() -> None:
    assert attempts_of(TransientError("HTTP 503", 503), attempts=4) == 4


@pytest.mark.parametrize("error", [ApiError("HTTP 400", 400), NotFoundError("HTTP 404", 404)])
def test_the_policy_does_not_retry_what_a_retry_cannot_fix(error: ApiError) -> None:
    assert attempts_of(error, attempts=4) == 1


def test_the_policy_stops_retrying_once_the_run_is_stopping() -> None:
    assert attempts_of(TransientError("HTTP 503", 503), attempts=10, stop_after=2) == 2


def test_retry_kind_names_the_status_the_transport_error_or_the_words() -> None:
    assert retry_kind(TransientError("HTTP 503: x", 503)) == "HTTP 503"
    try:
        raise TransientError("ReadTimeout: x") from httpx.ReadTimeout("x")
    except TransientError as exc:
        assert retry_kind(exc) == "ReadTimeout"
    assert retry_kind(TransientError("the body is not JSON", 200)) == "the body is not JSON"
    assert retry_kind(ValueError("x")) == "ValueError"
