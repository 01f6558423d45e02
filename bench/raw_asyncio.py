"""The floor of issue 21's latency measure: raw asyncio streams, one keep-alive connection per
lane, a hand-written HTTP/1.1 GET and the least parsing that can read the answer (status line,
Content-Length, the body in one read, `json.loads`). No retries, no bounds, no database: what
any client on asyncio costs at least. Assumes the stand-in API's Content-Length framing.

    python bench/raw_asyncio.py ids.txt 100
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit


async def worker(ids: Iterator[str], counts: dict[str, int], host: str, port: int) -> None:
    token = f"{os.environ['SIGNALWIRE_PROJECT_ID']}:{os.environ['SIGNALWIRE_API_TOKEN']}"
    head = (
        f"Host: {host}:{port}\r\nAccept: application/json\r\n"
        f"Authorization: Basic {base64.b64encode(token.encode()).decode()}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for session_id in ids:
            writer.write(
                b"GET /api/video/room_sessions/%s HTTP/1.1\r\n" % session_id.encode() + head
            )
            lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            length = next(
                int(line.split(b":", 1)[1])
                for line in lines
                if line[:15].lower() == b"content-length:"
            )
            body = await reader.readexactly(length)
            if status == 200:
                json.loads(body)
                counts["stored"] += 1
            else:
                counts["failed"] += 1
    finally:
        writer.close()


async def main(path: str, concurrency: int) -> int:
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    counts = {"requested": len(lines), "stored": 0, "failed": 0}
    space = urlsplit(os.environ["SIGNALWIRE_SPACE"])
    assert space.hostname is not None and space.port is not None
    started = time.monotonic()
    ids = iter(lines)
    await asyncio.gather(
        *(worker(ids, counts, space.hostname, space.port) for _ in range(concurrency))
    )
    print(json.dumps({**counts, "elapsed_s": round(time.monotonic() - started, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1], int(sys.argv[2]))))
