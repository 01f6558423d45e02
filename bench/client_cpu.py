"""CPU per request of roomsync's HTTP client alone (etl.signalwire.SignalWireClient): 200s
against 404s (issue 21: a 404 costs at most what a 200 costs), no database, no pipeline.

The stand-in API runs in its own process (bench/api_server.py, 0 ms); here C workers call
`get_room_session` over known ids, then over as many unknown ids (404s), in interleaved
repeats; the CPU is this process's own (`time.process_time`), per request.

    python bench/client_cpu.py --ids 5000 --concurrency 20 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import PROJECT_ID, TOKEN, api_server

from etl.config import Settings
from etl.errors import NotFoundError
from etl.signalwire import SignalWireClient


async def fetch_all(settings: Settings, ids: list[str]) -> float:
    """CPU seconds this process spent fetching every id, C at a time."""
    async with SignalWireClient(settings) as client:
        todo = iter(ids)

        async def worker() -> None:
            for session_id in todo:
                with contextlib.suppress(NotFoundError):
                    await client.get_room_session(session_id)

        await worker_round(client, ids[:50])  # warm the lanes' connections
        started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(settings.concurrency)))
        return time.process_time() - started


async def worker_round(client: SignalWireClient, ids: list[str]) -> None:
    for session_id in ids:
        with contextlib.suppress(NotFoundError):
            await client.get_room_session(session_id)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ids", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ids_file = Path(tmp) / "ids.txt"
        with api_server(args.ids, 0.0, ids_file) as server:
            known = ids_file.read_text().split()
            unknown = [str(uuid.uuid4()) for _ in known]
            settings = Settings(
                base_url=server.base_url,
                project_id=PROJECT_ID,
                api_token=TOKEN,
                concurrency=args.concurrency,
            )
            cpu: dict[str, list[float]] = {"200": [], "404": []}
            for _ in range(args.repeat):
                for kind, ids in (("200", known), ("404", unknown)):
                    seconds = asyncio.run(fetch_all(settings, ids))
                    cpu[kind].append(seconds / len(ids) * 1e6)
                    print(f"{kind}: {cpu[kind][-1]:.0f} µs/request", file=sys.stderr, flush=True)
    for kind, runs in cpu.items():
        print(
            f"client CPU per {kind} (min/median/max of {args.repeat}, µs): "
            f"{min(runs):.0f}/{statistics.median(runs):.0f}/{max(runs):.0f}"
        )
    ratio = statistics.median(cpu["404"]) / statistics.median(cpu["200"])
    print(f"CPU per 404 / CPU per 200 (medians): {ratio:.2f} (target at most 1.00)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
