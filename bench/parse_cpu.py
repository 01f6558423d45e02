"""CPU per id of what a 200 costs between the transport's bytes and the writer's rows, in
process, no HTTP and no database: `decode_json` of a typical by-id body (etl.bodies), then
`parse_session` (etl.records); also the pipeline's per-id bookkeeping (Tally, BatchWriter).

The bodies are the stand-in API's own (etl.fake_api: by-id views of generated sessions), as
bytes the way the server sends them. CPU is this process's (`time.process_time`), min/median/max
of --repeat rounds over --ids bodies.

    python bench/parse_cpu.py --ids 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from etl.bodies import decode_json
from etl.fake_api.data import by_id_view, generate_sessions
from etl.pipeline import Summary, Tally
from etl.records import parse_session


def bodies(n: int) -> list[tuple[str, bytes]]:
    sessions = generate_sessions(n, seed=1, now=datetime(2026, 1, 1, tzinfo=UTC))
    return [(s["id"], json.dumps(by_id_view(s)).encode()) for s in sessions]


def per_id(work: Callable[[], None], n: int, repeat: int) -> list[float]:
    """CPU µs per id of `work` (one pass over n ids), `repeat` times."""
    runs = []
    for _ in range(repeat):
        started = time.process_time()
        work()
        runs.append((time.process_time() - started) / n * 1e6)
    return runs


def show(label: str, runs: list[float]) -> None:
    print(
        f"{label:<28} CPU µs/id (min/median/max of {len(runs)}): "
        f"{min(runs):.2f}/{statistics.median(runs):.2f}/{max(runs):.2f}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ids", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    items = bodies(args.ids)
    decoded = [(sid, decode_json(body)) for sid, body in items]

    def decode() -> None:
        for _, body in items:
            decode_json(body)

    def parse() -> None:
        for sid, payload in decoded:
            parse_session(payload, sid)

    def both() -> None:
        for sid, body in items:
            parse_session(decode_json(body), sid)

    def bookkeeping() -> None:
        tally = Tally(Summary(), None)
        for sid, _ in items:
            tally.asked()
            tally.settled(sid)
            tally.advance(1)

    show("decode_json", per_id(decode, args.ids, args.repeat))
    show("parse_session", per_id(parse, args.ids, args.repeat))
    show("decode + parse", per_id(both, args.ids, args.repeat))
    show("tally (asked/settled/adv.)", per_id(bookkeeping, args.ids, args.repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
