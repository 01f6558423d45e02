"""Serve the stand-in standalone (benchmarks, manual tries):

python -m etl.fake_api --port 8080 --sessions 1000 --latency-ms 100 --project-id p --token t"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

from .data import generate_account, generate_sessions
from .state import FakeSignalWire

# --------------------------------------------------------------------------- standalone


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m etl.fake_api",
        description="Serve a local stand-in of SignalWire's room sessions API until SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="IPv4 loopback address")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--sessions", type=int, default=1000, help="how many to generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every reply")
    parser.add_argument("--project-id", default="test-project")
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--ids-file", type=Path, help="write the generated ids here first")
    parser.add_argument("--absolute-links", action="store_true")
    parser.add_argument("--shuffle-list", action="store_true")
    parser.add_argument(
        "--bill",
        action="store_true",
        help="also serve members, recordings, rooms and video logs consistent with the sessions",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Print base_url on one line, then serve until SIGTERM or SIGINT."""
    args = _parse_args(argv)
    account = generate_account(args.sessions, seed=args.seed) if args.bill else None
    sessions = generate_sessions(args.sessions, seed=args.seed) if account is None else []
    fake = FakeSignalWire(
        sessions,
        account=account,
        project_id=args.project_id,
        token=args.token,
        latency=args.latency_ms / 1000,
        host=args.host,
        port=args.port,
        absolute_links=args.absolute_links,
        shuffle_list=args.shuffle_list,
    )
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with fake:
        if args.ids_file is not None:
            served = list(fake.sessions.values())
            args.ids_file.write_text("".join(f"{s['id']}\n" for s in served))
        print(fake.base_url, flush=True)
        while not stopping.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
