"""Pure upsert throughput: `etl.storage.sessions.upsert_sessions` over parsed rows, both backends.

Rows are generated and parsed before the clock starts; each batch is one call (one statement,
one transaction). Three passes over the same rows in a fresh database: `insert` (empty table),
`update` (every row newer by a second) and `unchanged` (the same rows again: the WHERE clause
leaves them alone). PostgreSQL is a throwaway server from tests/pgserver.py (fsync off, as in
the tests), so its figures are an upper bound for a durable server.

    python bench/upsert.py                              # 20,000 rows, batches 100..1000
    python bench/upsert.py --rows 50000 --batch-sizes 500 --database sqlite
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from etl.fake_api import by_id_view, generate_sessions  # noqa: E402
from etl.records import parse_session  # noqa: E402
from etl.storage.engines import make_engine  # noqa: E402
from etl.storage.migrate import upgrade  # noqa: E402
from etl.storage.sessions import upsert_sessions  # noqa: E402

MAX_SECONDS_PER_PASS = 300.0


def parsed_rows(n: int) -> tuple[list[dict[str, Any]], float]:
    """`n` rows as the pipeline hands them to the store, and the parse cost in µs per row."""
    bodies = [by_id_view(s) for s in generate_sessions(n, seed=7)]
    started = time.process_time()
    rows = [parse_session(body, body["id"]) for body in bodies]
    return rows, (time.process_time() - started) / n * 1e6


def newer(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "updated_at": row["updated_at"] + timedelta(seconds=1)} for row in rows]


def chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def timed_pass(
    engine: Any, rows: list[dict[str, Any]], size: int, expect: str
) -> tuple[float, float]:
    """(rows/s, CPU µs/row of this process) for one pass; checks every outcome is `expect`."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    now = datetime.now(UTC)
    for batch in chunks(rows, size):
        outcomes = upsert_sessions(engine, batch, now)
        if set(outcomes.values()) != {expect}:
            raise RuntimeError(f"expected every row {expect}, got {set(outcomes.values())}")
        if time.perf_counter() - wall0 > MAX_SECONDS_PER_PASS:
            raise RuntimeError("pass took too long")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return len(rows) / wall, cpu / len(rows) * 1e6


def measure_backend(new_url: Callable[[str], str], rows: list[dict[str, Any]], size: int) -> list:
    url = new_url(f"upsert_{size}")
    upgrade(url)
    engine = make_engine(url)
    try:
        insert = timed_pass(engine, rows, size, "inserted")
        update = timed_pass(engine, newer(rows), size, "updated")
        unchanged = timed_pass(engine, newer(rows), size, "unchanged")
    finally:
        engine.dispose()
    return [insert, update, unchanged]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--batch-sizes", default="100,250,500,1000")
    p.add_argument("--database", default="sqlite,postgresql", help="comma-separated")
    args = p.parse_args(argv)
    rows, parse_us = parsed_rows(args.rows)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    table = []
    with tempfile.TemporaryDirectory(prefix="roomsync-upsert-") as tmp:
        for backend in args.database.split(","):
            with database_factory(backend, Path(tmp)) as new_url:
                for size in sizes:
                    results = measure_backend(new_url, rows, size)
                    table.append([backend, str(size), *_cells(results)])
                    print(" | ".join(table[-1]), file=sys.stderr, flush=True)
    print(f"{args.rows:,} pre-parsed rows (parse_session: {parse_us:.0f} µs/row, not counted)")
    print()
    header = [
        "database",
        "rows/statement",
        "insert rows/s",
        "update rows/s",
        "unchanged rows/s",
        "client CPU µs/row (insert)",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for line in table:
        print("| " + " | ".join(line) + " |")
    return 0


def _cells(results: list[tuple[float, float]]) -> list[str]:
    (ins, ins_cpu), (upd, _), (unch, _) = results
    return [f"{ins:,.0f}", f"{upd:,.0f}", f"{unch:,.0f}", f"{ins_cpu:.0f}"]


class database_factory:  # noqa: N801 (used as a context manager, like a function)
    """Fresh databases: SQLite files in `tmp`, or databases on a throwaway PostgreSQL server."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend = backend
        self.tmp = tmp
        self.server: Any = None

    def __enter__(self) -> Callable[[str], str]:
        if self.backend == "sqlite":
            return lambda name: f"sqlite:///{self.tmp / (name + '.db')}"
        from pgserver import start_pg_server

        self.server = start_pg_server()
        return self.server.create_database

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
