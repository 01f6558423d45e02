"""The client's retry policy: what is retried, how long to wait, when to give up.

One function, `retrying`, builds it (as stamina's and dlt's retry modules do); the client only
says what an attempt is. What is retried: a TransientError (429, 500/502/503/504 -- the
`RETRY_STATUSES` -- connection errors, timeouts, bodies cut short or not JSON). The wait:
`Retry-After` in either form, capped at `max_retry_after`; a zero, negative or past value is no
hint and falls back to exponential backoff from `backoff` seconds, plus up to `backoff` of
jitter, capped at MAX_BACKOFF_S. The stop: after `attempts` attempts, or as soon as the run is
being stopped (a signal): the id stays failed, in the failure ledger, for the next run.
"""

from __future__ import annotations

import email.utils
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from .errors import TransientError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0

Sleep = Callable[[float], Awaitable[None]]


def retrying(
    *,
    attempts: int,
    backoff: float,
    max_retry_after: float,
    should_stop: Callable[[], bool],
    sleep: Sleep,
    before_sleep: Callable[[RetryCallState], None],
) -> AsyncRetrying:
    """The retry policy for one request: `async for attempt in retrying(...)`. The last error
    is re-raised once the policy gives up."""
    fallback = wait_exponential(multiplier=backoff, max=MAX_BACKOFF_S) + wait_random(0, backoff)
    return AsyncRetrying(
        stop=stop_after_attempt(attempts) | StopWhen(should_stop),
        wait=RetryAfterWait(fallback, cap=max_retry_after),
        retry=retry_if_exception_type(TransientError),
        sleep=sleep,
        reraise=True,
        before_sleep=before_sleep,
    )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or HTTP date); None when no hint."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.now(UTC).timestamp() if now is None else now
        seconds = when.timestamp() - current
    return seconds if seconds > 0 else None


class RetryAfterWait(wait_base):
    """Wait what the server asked for (capped), else fall back to backoff with jitter."""

    def __init__(self, fallback: wait_base, cap: float) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return min(exc.retry_after, self.cap)
        return min(self.fallback(retry_state), self.cap)


class StopWhen(stop_base):
    """Give up retrying once `predicate` is true (the run is being stopped)."""

    def __init__(self, predicate: Callable[[], bool]) -> None:
        self.predicate = predicate

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.predicate()


def retry_kind(exc: BaseException | None) -> str:
    """What a retried attempt failed with: `HTTP 503`, the transport error (`ReadTimeout`,
    `RemoteProtocolError`), or the error's own words (a body that is not JSON, a timeout)."""
    if isinstance(exc, TransientError):
        if exc.status is not None and exc.status != 200:
            return f"HTTP {exc.status}"
        if isinstance(exc.__cause__, httpx.TransportError):
            return type(exc.__cause__).__name__
        return str(exc)
    return type(exc).__name__
