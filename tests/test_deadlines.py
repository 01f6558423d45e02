"""etl.signalwire.Deadlines, the one timer behind every request's deadline: the same outcomes as
`asyncio.timeout` around each request, with requests started at different times in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from etl.signalwire import Deadlines

BOUND_S = 30.0  # no test may hang: each runs under this outer limit
Body = Callable[[], Awaitable[Any]]


async def _quick() -> str:
    await asyncio.sleep(0)
    return "answer"


async def _forever() -> None:
    await asyncio.Event().wait()


async def _fails() -> None:
    await asyncio.sleep(0)
    raise ValueError("the request failed")


async def _with_asyncio_timeout(timeout: float, body: Body) -> Any:
    async with asyncio.timeout(timeout):
        return await body()


async def _with_deadlines(timeout: float, body: Body) -> Any:
    return await Deadlines(timeout).run(body())


def _outcome(limit: Callable[[float, Body], Awaitable[Any]], body: Body, *, cancel: bool) -> object:
    """What `limit(0.05, body)` ends with in a task: its value or its exception's type, and how
    many cancellations the task still has pending after it (none, once a deadline is handled)."""

    async def request() -> tuple[object, int]:
        task = asyncio.current_task()
        assert task is not None
        try:
            result: object = await limit(0.05, body)
        except (TimeoutError, ValueError) as exc:
            result = type(exc)
        return result, task.cancelling()

    async def main() -> object:
        async with asyncio.timeout(BOUND_S):
            task = asyncio.create_task(request())
            if cancel:  # cancelled from elsewhere (a second signal) while it waits
                await asyncio.sleep(0)
                task.cancel()
            try:
                return await task
            except asyncio.CancelledError:
                return asyncio.CancelledError

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("body", "cancel", "expected"),
    [
        (_quick, False, ("answer", 0)),
        (_forever, False, (TimeoutError, 0)),
        (_fails, False, (ValueError, 0)),
        (_forever, True, asyncio.CancelledError),
        (_quick, True, asyncio.CancelledError),
    ],
)
def test_a_request_ends_as_under_asyncio_timeout(
    body: Body, cancel: bool, expected: object
) -> None:
    assert _outcome(_with_asyncio_timeout, body, cancel=cancel) == expected
    assert _outcome(_with_deadlines, body, cancel=cancel) == expected


def test_a_deadline_passing_with_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    """The timer fires and the task is cancelled by someone else before it runs again: as with
    asyncio.timeout, the task is cancelled, not timed out."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(0.0)
        task = asyncio.create_task(deadlines.run(_forever()))
        await asyncio.sleep(0)  # the request is in flight, its deadline already reached
        deadlines._fire(loop)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deadlines.close()

    asyncio.run(asyncio.wait_for(main(), BOUND_S))


def test_every_request_in_flight_gets_its_own_deadline() -> None:
    """Requests started one after another on one client: each stalled one times out (the timer
    set for the first is moved on to the next), each quick one in between answers."""

    async def main() -> list[object]:
        deadlines = Deadlines(0.05)
        started: list[asyncio.Task[Any]] = []
        for body in (_forever, _quick, _forever, _quick, _forever):
            started.append(asyncio.create_task(deadlines.run(body())))
            await asyncio.sleep(0.01)  # a later start: a later deadline
        results = await asyncio.gather(*started, return_exceptions=True)
        with pytest.raises(TimeoutError):  # a request after the others still has a deadline
            await deadlines.run(_forever())
        assert await deadlines.run(_quick()) == "answer"
        deadlines.close()
        return [type(r) if isinstance(r, BaseException) else r for r in results]

    results = asyncio.run(asyncio.wait_for(main(), BOUND_S))
    assert results == [TimeoutError, "answer", TimeoutError, "answer", TimeoutError]
