"""LaneTransport: one connection per lane, at most `size` requests in flight, lanes given back."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from etl.fake_api import FakeSignalWire, generate_sessions
from etl.signalwire import LaneTransport

PROJECT, TOKEN = "test-project", "test-token"


def _client(fake: FakeSignalWire, lanes: LaneTransport, pool: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=fake.base_url,
        auth=(PROJECT, TOKEN),
        transport=lanes,
        timeout=httpx.Timeout(5.0, pool=pool),
    )


def _path(session: dict[str, Any]) -> str:
    return f"/api/video/room_sessions/{session['id']}"


def test_at_most_size_in_flight_and_every_lane_comes_back() -> None:
    sessions = generate_sessions(12, seed=40)

    async def go(fake: FakeSignalWire) -> list[int]:
        lanes = LaneTransport(3)
        async with _client(fake, lanes) as client:
            responses = await asyncio.gather(*(client.get(_path(s)) for s in sessions))
            assert lanes.idle == 3
            return [r.status_code for r in responses]

    # 0.5 s a reply: three requests overlap even when a loaded machine delays the sends
    with FakeSignalWire(sessions, project_id=PROJECT, token=TOKEN, latency=0.5) as fake:
        assert asyncio.run(go(fake)) == [200] * 12
        assert fake.max_in_flight == 3


def test_waiting_longer_than_the_pool_timeout_is_a_pool_timeout() -> None:
    sessions = generate_sessions(2, seed=41)

    async def go(fake: FakeSignalWire) -> list[Any]:
        async with _client(fake, LaneTransport(1), pool=0.05) as client:
            return await asyncio.gather(
                *(client.get(_path(s)) for s in sessions), return_exceptions=True
            )

    with FakeSignalWire(sessions, project_id=PROJECT, token=TOKEN, latency=0.5) as fake:
        first, second = asyncio.run(go(fake))
    assert first.status_code == 200
    assert isinstance(second, httpx.PoolTimeout)


def test_a_cancelled_request_gives_its_lane_back() -> None:
    sessions = generate_sessions(1, seed=42)

    async def go(fake: FakeSignalWire) -> int:
        lanes = LaneTransport(1)
        async with _client(fake, lanes) as client:
            task = asyncio.create_task(client.get(_path(sessions[0])))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert lanes.idle == 1
            return (await client.get(_path(sessions[0]))).status_code

    with FakeSignalWire(sessions, project_id=PROJECT, token=TOKEN, latency=0.2) as fake:
        assert asyncio.run(go(fake)) == 200
