"""Pure upsert throughput: `etl.storage.sessions.upsert_sessions` over parsed rows, both backends,
beside the raw driver floor on the same rows.

Rows are generated and parsed before the clock starts; each batch is one call (one statement,
one transaction). Three passes over the same rows in a fresh database: `insert` (empty table),
`update` (every row newer by a second) and `unchanged` (the same rows again: the WHERE clause
leaves them alone). PostgreSQL is a throwaway server from tests/pgserver.py (fsync off, as in
the tests), so its figures are an upper bound for a durable server.

`--floor` also runs the raw driver path on the same rows, converted to driver values before the
clock starts, one transaction per batch, in a fresh database of its own: SQLite `executemany`
of the same upsert (`INSERT ... VALUES ... ON CONFLICT DO UPDATE ... WHERE`, no RETURNING);
PostgreSQL COPY into a temporary table + the same `INSERT ... SELECT ... ON CONFLICT`. Each
figure is then printed as roomsync's rows/s over the floor's, min/median/max over `--repeat`
runs (each run: a fresh database for each).

    python bench/upsert.py                              # 20,000 rows, batches 100..1000
    python bench/upsert.py --rows 50000 --batch-sizes 500 --database sqlite
    python bench/upsert.py --rows 20000 --batch-sizes 500 --floor --repeat 3
    PYTHONPATH=/path/to/other/checkout python bench/upsert.py --floor   # measure another version
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# PYTHONPATH set: measure the `etl` found there (another checkout) instead of this one's
sys.path[:0] = (
    [str(ROOT / "tests")] if os.environ.get("PYTHONPATH") else [str(ROOT), str(ROOT / "tests")]
)

MAX_SECONDS_PER_PASS = 300.0
_serial = iter(range(1_000_000))
_FLOOR_CPU: list[float] = []  # SQLite floor insert passes: CPU µs/row (all of it in-process)


def parsed_rows(n: int) -> tuple[list[dict[str, Any]], float]:
    """`n` rows as the pipeline hands them to the store, and the parse cost in µs per row."""
    from etl.fake_api import by_id_view, generate_sessions
    from etl.records import parse_session

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
    from etl.storage.sessions import upsert_sessions

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
    from etl.storage.engines import make_engine
    from etl.storage.migrate import upgrade

    url = new_url(f"upsert_{size}_{next(_serial)}")
    upgrade(url)
    engine = make_engine(url)
    try:
        insert = timed_pass(engine, rows, size, "inserted")
        update = timed_pass(engine, newer(rows), size, "updated")
        unchanged = timed_pass(engine, newer(rows), size, "unchanged")
    finally:
        engine.dispose()
    return [insert, update, unchanged]


# --------------------------------------------------------------------------- the driver floor


def _floor_upsert(dialect: str, source: Any = None) -> Any:
    """The upsert roomsync runs, built from the same pieces (`_merged_values`, the same WHERE),
    as a VALUES statement (SQLite) or reading a staged table (PostgreSQL), no RETURNING."""
    import sqlalchemy as sa

    from etl.storage.schema import UTCDateTime, room_sessions
    from etl.storage.sessions import _NOT_COMPARED, _merged_values
    from etl.storage.sql import insert_for

    insert = insert_for(dialect, room_sessions)
    if source is None:
        insert = insert.values({c.name: sa.bindparam(c.name) for c in room_sessions.columns})
    else:
        insert = insert.from_select([c.name for c in room_sessions.columns], source)
    merged = _merged_values(insert.excluded, dialect)
    changed = sa.or_(
        *(
            merged[c.name].is_distinct_from(c)
            for c in room_sessions.columns
            if c.name not in _NOT_COMPARED
        )
    )
    t = room_sessions
    newer = insert.excluded.updated_at > t.c.updated_at
    same_age = insert.excluded.updated_at == t.c.updated_at
    untrusted = t.c.updated_at > sa.bindparam("trust_until", type_=UTCDateTime())
    return insert.on_conflict_do_update(
        index_elements=[t.c.id],
        set_=merged,
        where=sa.or_(newer, sa.and_(sa.or_(same_age, untrusted), changed)),
    )


def _driver_values(row: dict[str, Any], sqlite: bool, now: datetime) -> dict[str, Any]:
    """One row as the bare driver binds it (converted before the clock starts)."""

    def conv(value: Any) -> Any:
        if isinstance(value, datetime):
            utc = value.astimezone(UTC)
            return utc.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite else utc
        return value

    values = {k: conv(v) for k, v in row.items()}
    values["raw"] = json.dumps(row["raw"])
    values["cost_final"] = False
    values["deleted_at"] = None
    values["first_synced_at"] = values["last_synced_at"] = conv(now)
    values["trust_until"] = conv(now + timedelta(minutes=5))
    return values


def floor_pass(url: str, rows: list[dict[str, Any]], size: int) -> float:
    """rows/s of the bare driver over `rows`, one transaction per batch (see the module doc)."""
    from etl.storage.schema import room_sessions

    sqlite = url.startswith("sqlite")
    now = datetime.now(UTC)
    converted = [_driver_values(row, sqlite, now) for row in rows]
    if sqlite:
        return _floor_sqlite(url, converted, size)
    columns = [c.name for c in room_sessions.columns]
    return _floor_postgresql(url, converted, size, columns)


def _floor_sqlite(url: str, converted: list[dict[str, Any]], size: int) -> float:
    import sqlite3

    from sqlalchemy.dialects import sqlite as sqlite_dialect

    compiled = _floor_upsert("sqlite").compile(dialect=sqlite_dialect.dialect())
    order = compiled.positiontup
    params = [tuple(values[name] for name in order) for values in converted]
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for batch in chunks(params, size):
            conn.executemany(str(compiled), batch)
            conn.commit()
        _FLOOR_CPU.append((time.process_time() - cpu0) / len(params) * 1e6)
        return len(params) / (time.perf_counter() - wall0)
    finally:
        conn.close()


def _floor_postgresql(
    url: str, converted: list[dict[str, Any]], size: int, columns: list[str]
) -> float:
    import psycopg
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    from etl.storage.schema import room_sessions

    staged = [c for c in columns if c not in ("first_synced_at", "last_synced_at")]
    stage = sa.table("floor_stage", *(sa.column(n) for n in staged))
    now = sa.bindparam("now")
    source = sa.select(
        *(now.label(n) if n not in staged else stage.c[n] for n in columns)
    ).order_by(stage.c.id)
    dialect = postgresql.psycopg.dialect()
    compiled = _floor_upsert("postgresql", source).compile(dialect=dialect)
    sql = str(compiled)  # pyformat: %(now)s, %(trust_until)s
    ddl = ", ".join(f"{n} {room_sessions.c[n].type.compile(dialect=dialect)}" for n in staged)
    params = [tuple(values[n] for n in staged) for values in converted]
    extra = {"now": converted[0]["first_synced_at"], "trust_until": converted[0]["trust_until"]}
    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE TEMP TABLE floor_stage ({ddl})")
        conn.commit()
        wall0 = time.perf_counter()
        for batch in chunks(params, size):
            with conn.cursor() as cur:
                with cur.copy(f"COPY floor_stage ({', '.join(staged)}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
                cur.execute(sql, extra)
                cur.execute("DELETE FROM floor_stage")
            conn.commit()
        return len(params) / (time.perf_counter() - wall0)


def measure_floor(new_url: Callable[[str], str], rows: list[dict[str, Any]], size: int) -> list:
    """The floor's rows/s for the three passes, in a fresh database."""
    from etl.storage.migrate import upgrade

    url = new_url(f"floor_{size}_{next(_serial)}")
    upgrade(url)
    return [
        floor_pass(url, rows, size),
        floor_pass(url, newer(rows), size),
        floor_pass(url, newer(rows), size),
    ]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--batch-sizes", default="100,250,500,1000")
    p.add_argument("--database", default="sqlite,postgresql", help="comma-separated")
    p.add_argument("--floor", action="store_true", help="the raw driver path beside each figure")
    p.add_argument("--repeat", type=int, default=1, help="runs of each; min/median/max shown")
    args = p.parse_args(argv)
    rows, parse_us = parsed_rows(args.rows)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    table = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="roomsync-upsert-") as tmp:
        for backend in args.database.split(","):
            with database_factory(backend, Path(tmp)) as new_url:
                for size in sizes:
                    runs, floors = [], []
                    for _ in range(args.repeat):  # interleaved: roomsync, floor, roomsync ...
                        runs.append(measure_backend(new_url, rows, size))
                        if args.floor:
                            floors.append(measure_floor(new_url, rows, size))
                    table.append([backend, str(size), *_cells(runs, floors)])
                    if args.floor and backend == "sqlite":
                        insert_cpu = _FLOOR_CPU[0::3][-args.repeat :]
                        notes.append(_cpu_line(f"{backend} {size}", runs, insert_cpu))
                    print(" | ".join(table[-1]), file=sys.stderr, flush=True)
    where = os.environ.get("PYTHONPATH") or str(ROOT)
    print(f"{args.rows:,} pre-parsed rows (parse_session: {parse_us:.0f} µs/row, not counted); ")
    print(f"etl from {where}; {args.repeat} run(s) each, min/median/max")
    print()
    header = ["database", "rows/statement"]
    for kind in ("insert", "update", "unchanged"):
        header.append(f"{kind} rows/s")
        if args.floor:
            header += [f"{kind} floor rows/s", f"{kind} / floor"]
    header.append("client CPU µs/row (insert)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for line in table:
        print("| " + " | ".join(line) + " |")
    print()
    for note in notes:
        print(f"- {note}")
    return 0


def _spread(values: list[float], fmt: str) -> str:
    """min/median/max, or the one value."""
    if len(values) == 1:
        return format(values[0], fmt)
    return "/".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def _cells(runs: list[list[tuple[float, float]]], floors: list[list[float]]) -> list[str]:
    cells = []
    for k in range(3):
        ours = [run[k][0] for run in runs]
        cells.append(_spread(ours, ",.0f"))
        if floors:
            floor = [f[k] for f in floors]
            cells.append(_spread(floor, ",.0f"))
            cells.append(_spread([o / f for o, f in zip(ours, floor, strict=True)], ".2f"))
    cells.append(_spread([run[0][1] for run in runs], ".0f"))
    return cells


def _cpu_line(backend: str, runs: list[list[tuple[float, float]]], floors: list[float]) -> str:
    """SQLite does all its work in this process: CPU per row, ours over the floor's."""
    ours = [run[0][1] for run in runs]
    ratio = [f / o for o, f in zip(ours, floors, strict=True)]
    return (
        f"{backend} insert, CPU µs/row: roomsync {_spread(ours, '.1f')}, bare driver "
        f"{_spread(floors, '.1f')} (values converted before the clock); rows per CPU-second, "
        f"roomsync / floor: {_spread(ratio, '.2f')}"
    )


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
