"""Peer (c) of issue 21: a bare httpx GET + `json()` loop, one connection per lane.

C workers, each with its own `httpx.AsyncClient` holding one keep-alive connection, take ids
from one shared iterator: GET the session, `response.json()`, nothing else (no retries, no
bounds, no database). The floor a client built on httpx's own transport cannot go below.

    python bench/bare_httpx.py ids.txt 20
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
import time
from collections.abc import Iterator

import httpx


async def worker(ids: Iterator[str], counts: dict[str, int], verify: ssl.SSLContext) -> None:
    auth = (os.environ["SIGNALWIRE_PROJECT_ID"], os.environ["SIGNALWIRE_API_TOKEN"])
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(
        base_url=os.environ["SIGNALWIRE_SPACE"], auth=auth, timeout=30, limits=one, verify=verify
    ) as client:
        for session_id in ids:
            response = await client.get(f"/api/video/room_sessions/{session_id}")
            if response.status_code == 200:
                response.json()
                counts["stored"] += 1
            else:
                counts["failed"] += 1


async def main(path: str, concurrency: int) -> int:
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    counts = {"requested": len(lines), "stored": 0, "failed": 0}
    started = time.monotonic()
    ids = iter(lines)
    verify = httpx.create_ssl_context()  # one for all lanes: each costs ~20 ms of CPU to build
    await asyncio.gather(*(worker(ids, counts, verify) for _ in range(concurrency)))
    print(json.dumps({**counts, "elapsed_s": round(time.monotonic() - started, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1], int(sys.argv[2]))))
