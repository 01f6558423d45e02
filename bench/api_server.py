"""The stand-in API for benchmarks: its own process, loopback only, with request statistics.

Like `python -m etl.fake_api`, it prints its base URL and serves until SIGTERM; then it prints one
JSON line of statistics (requests served, most in flight at once, and the request starts per
sliding window) so the benchmark can check concurrency and rate limits from the server's side.
A server that is not stopped stops by itself after `--max-seconds`.

The account never changes while it is served, so the session list's order (newest first) is
computed once per filter and kept (`CachedListSignalWire`): etl.fake_api sorts the whole list
for every page, which costs a 1,000,000-session account minutes a page. `--account` serves the
whole bill (members, recordings, rooms, logs: etl.fake_api.data.generate_account) with the
sessions, for a first `roomsync sync` of everything.

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
from etl.fake_api.data import (  # noqa: E402
    _newest_first,
    _shuffled,
    generate_account,
    list_view,
)
from etl.fake_api.faults import Response, _json_bytes  # noqa: E402

MAX_RECORDED_STARTS = 2_000_000  # 16 MB of timestamps at most


class StartRecorder:
    """Records when each request started (monotonic clock), through the stand-in's public
    `on_request` hook; the stand-in keeps no per-path counter (`count_paths=False`)."""

    def __init__(self) -> None:
        self.starts = array("d")
        self._lock = threading.Lock()

    def __call__(self, _path: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self.starts) < MAX_RECORDED_STARTS:
                self.starts.append(now)


class CachedListSignalWire(FakeSignalWire):
    """The stand-in with the session list's order computed once per filter, for an account that
    does not change while served. Same order, same pages, same links as FakeSignalWire (its
    `_list_response`, with the sort taken out of the per-page path)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ordered: dict[tuple[bool, tuple[tuple[str, str], ...]], list[dict[str, Any]]] = {}
        self._order_lock = threading.Lock()

    def _matching(self, filters: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
        key = (self.shuffle_list, filters)
        with self._order_lock:
            found = self._ordered.get(key)
            if found is None:
                ordered = _shuffled if self.shuffle_list else _newest_first
                found = ordered(
                    s
                    for s in list(self.sessions.values())
                    if all(s.get(field) == value for field, value in filters)
                )
                self._ordered[key] = found
            return found

    def _list_response(self, path: str, query: str, *, bad_types: bool) -> Response:
        if bad_types:  # a scripted fault: the stand-in's own path
            return super()._list_response(path, query, bad_types=bad_types)
        parsed = self._parse_list_query(query)
        if isinstance(parsed, Response):
            return parsed
        matching = self._matching(parsed.filters)
        page = [list_view(s) for s in matching[parsed.offset : parsed.offset + parsed.page_size]]
        links = self._links(path, query, parsed, total=len(matching))
        return Response(200, _json_bytes({"links": links, "data": page}))


def most_in_window(starts: array, window_s: float) -> int:
    """The largest number of request starts inside any `window_s`-long window."""
    ordered = sorted(starts)
    best = 0
    for i, start in enumerate(ordered):
        j = bisect.bisect_left(ordered, start + window_s, lo=i)
        best = max(best, j - i)
    return best


def statistics(fake: FakeSignalWire, recorder: StartRecorder) -> dict[str, Any]:
    starts = recorder.starts
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
    parser.add_argument(
        "--account", action="store_true", help="serve the whole bill too (generate_account)"
    )
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    account = generate_account(args.sessions, seed=args.seed) if args.account else None
    sessions = account.sessions if account else generate_sessions(args.sessions, seed=args.seed)
    recorder = StartRecorder()
    fake = CachedListSignalWire(
        () if account else sessions,
        account=account,
        project_id=args.project_id,
        token=args.token,
        latency=args.latency_ms / 1000,
        host="127.0.0.1",
        on_request=recorder,
        count_paths=False,
    )
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    deadline = time.monotonic() + args.max_seconds
    with fake:
        if args.ids_file is not None:
            args.ids_file.write_text("".join(f"{s['id']}\n" for s in sessions))
        del sessions, account
        print(fake.base_url, flush=True)
        while not stopping.wait(0.2) and time.monotonic() < deadline:
            pass
    print(json.dumps(statistics(fake, recorder)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
