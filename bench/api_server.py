"""The stand-in API for benchmarks: its own process, loopback only, with request statistics.

Like `python -m etl.fake_api`, it prints its base URL and serves until SIGTERM; then it prints one
JSON line of statistics (requests served, most in flight at once, and the request starts per
sliding window) so the benchmark can check concurrency and rate limits from the server's side.
A server that is not stopped stops by itself after `--max-seconds`.

    python bench/api_server.py --sessions 2000 --latency-ms 100 --ids-file ids.txt
"""

from __future__ import annotations

import argparse
import bisect
import json
import signal
import sys
import threading
import time
from array import array
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from etl.fake_api import FakeSignalWire, generate_sessions  # noqa: E402

MAX_RECORDED_STARTS = 2_000_000  # 16 MB of timestamps at most


class CountingFake(FakeSignalWire):
    """The stand-in API, also recording when each request started (monotonic clock).

    The per-path counter of the base class is emptied as it goes: a million distinct ids would
    otherwise sit in it for nothing.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.starts = array("d")

    def _begin(self, path: str) -> None:
        super()._begin(path)
        now = time.monotonic()
        with self._lock:
            self.requests.pop(path, None)
            if len(self.starts) < MAX_RECORDED_STARTS:
                self.starts.append(now)


def most_in_window(starts: array, window_s: float) -> int:
    """The largest number of request starts inside any `window_s`-long window."""
    ordered = sorted(starts)
    best = 0
    for i, start in enumerate(ordered):
        j = bisect.bisect_left(ordered, start + window_s, lo=i)
        best = max(best, j - i)
    return best


def statistics(fake: CountingFake) -> dict[str, Any]:
    starts = fake.starts
    return {
        "requests": fake.total_requests,
        "max_in_flight": fake.max_in_flight,
        "first_start": min(starts) if starts else None,
        "last_start": max(starts) if starts else None,
        "most_in_1s": most_in_window(starts, 1.0),
        "most_in_10s": most_in_window(starts, 10.0),
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--project-id", default="bench-project")
    parser.add_argument("--token", default="bench-token")
    parser.add_argument("--ids-file", type=Path, help="write the generated ids here first")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    sessions = generate_sessions(args.sessions, seed=args.seed)
    fake = CountingFake(
        sessions,
        project_id=args.project_id,
        token=args.token,
        latency=args.latency_ms / 1000,
        host="127.0.0.1",
    )
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    deadline = time.monotonic() + args.max_seconds
    with fake:
        if args.ids_file is not None:
            args.ids_file.write_text("".join(f"{s['id']}\n" for s in sessions))
        del sessions
        print(fake.base_url, flush=True)
        while not stopping.wait(0.2) and time.monotonic() < deadline:
            pass
    print(json.dumps(statistics(fake)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
