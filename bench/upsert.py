"""Pure upsert throughput: `etl.storage.sessions.upsert_sessions` over parsed rows, both backends,
beside the raw driver floors on the same rows.

Rows are generated and parsed before the clock starts; each batch is one call (one statement,
one transaction). Three passes over the same rows in a fresh database: `insert` (empty table),
`update` (every row newer by a second) and `unchanged` (the same rows again: the WHERE clause
leaves them alone). PostgreSQL is a throwaway server from tests/pgserver.py (fsync off, as in
the tests), so its figures are an upper bound for a durable server.

`--floor` also runs two raw driver paths on the same parsed rows (the dicts the pipeline hands
the writer), one transaction per batch, each in a fresh database of its own: SQLite
`executemany` of the same upsert (`INSERT ... VALUES ... ON CONFLICT DO UPDATE ... WHERE`, no
RETURNING); PostgreSQL COPY into a temporary table (ON COMMIT DELETE ROWS: emptied at commit,
no statement of its own) + the same `INSERT ... SELECT ... ON CONFLICT`. The *honest* floor
converts the rows to driver values batch by batch on its clock (one itemgetter per row, the
timestamps as the driver takes them -- SQLite the UTC text roomsync stores, psycopg the
datetimes themselves -- and `json.dumps` of raw), as any program writing these rows must; the
*pre-converted* floor converts them all before its clock starts, as the floor was first
measured, and is printed beside it so the two can be told apart. Each figure is then printed
as roomsync's throughput over each floor's: rows/s (wall), rows per CPU-second of this process
and, on PostgreSQL, rows per CPU-second of this process and the server together (the measure
the shared machine's load swings least), min/median/max over `--repeat` runs (each run: a
fresh database for each, interleaved).

    python bench/upsert.py                              # 20,000 rows, batches 100..1000
    python bench/upsert.py --rows 50000 --batch-sizes 500 --database sqlite
    python bench/upsert.py --rows 20000 --batch-sizes 500 --floor --repeat 3
    PYTHONPATH=/path/to/other/checkout python bench/upsert.py --floor   # measure another version
"""

from __future__ import annotations

import argparse
import json
import operator
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
Pass = tuple[float, float, float]  # rows/s, CPU µs/row: this process, with the server's
_serial = iter(range(1_000_000))


_SERVER: list[int] = []  # the PostgreSQL postmaster's pid while one is running


def server_cpu() -> float:
    """CPU seconds used so far by the throwaway PostgreSQL server: the postmaster with the
    children it reaped, and its live children (the backends, the WAL writer ...); 0 without one.
    The server serves only this benchmark, so the difference over a pass is that pass's work."""
    if not _SERVER:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile: its time is in the postmaster's reaped children
        pid, ppid = int(entry), int(fields[1])
        if pid == _SERVER[0]:
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        elif ppid == _SERVER[0]:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


class Clock:
    """Wall time, this process's CPU and the server's CPU over a pass."""

    def __init__(self) -> None:
        self.wall, self.cpu, self.server = time.perf_counter(), time.process_time(), server_cpu()

    def check(self) -> None:
        if time.perf_counter() - self.wall > MAX_SECONDS_PER_PASS:
            raise RuntimeError("pass took too long")

    def result(self, n: int) -> Pass:
        """(rows/s, this process's CPU µs/row, with the server's CPU µs/row)."""
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        server = server_cpu() - self.server
        return n / wall, cpu / n * 1e6, (cpu + server) / n * 1e6


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


def timed_pass(engine: Any, rows: list[dict[str, Any]], size: int, expect: str) -> Pass:
    """One pass (see Clock.result); checks every outcome is `expect`."""
    from etl.storage.sessions import upsert_sessions

    clock = Clock()
    now = datetime.now(UTC)
    for batch in chunks(rows, size):
        outcomes = upsert_sessions(engine, batch, now)
        if set(outcomes.values()) != {expect}:
            raise RuntimeError(f"expected every row {expect}, got {set(outcomes.values())}")
        clock.check()
    return clock.result(len(rows))


def measure_backend(
    new_url: Callable[[str], str], rows: list[dict[str, Any]], size: int
) -> list[Pass]:
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


def _driver_time(sqlite: bool) -> Callable[[datetime], Any]:
    """A UTC timestamp as the bare driver takes it: SQLite the text roomsync stores
    (`2026-11-25 12:00:00.000000`, UTC), psycopg the aware datetime itself."""
    if sqlite:
        return lambda value: value.astimezone(UTC).isoformat(" ", "microseconds")[:26]
    return lambda value: value


def _floor_converter(
    order: list[str], sqlite: bool, now: datetime
) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """The obvious conversion of a parsed row to the values the bare driver binds, in `order`:
    the row's values read once (one itemgetter), the timestamps as the driver takes them,
    `json.dumps` of raw; the columns set per batch (sync stamps, deleted_at, cost_final and
    trust_until) are constants."""
    from etl.storage.schema import UTCDateTime, room_sessions

    fixed = {"first_synced_at", "last_synced_at", "deleted_at", "cost_final", "trust_until"}
    names = [n for n in order if n not in fixed]
    picked = operator.itemgetter(*names)
    times = [i for i, n in enumerate(names) if isinstance(room_sessions.c[n].type, UTCDateTime)]
    raw = names.index("raw")
    ts = _driver_time(sqlite)
    constants = {
        "first_synced_at": ts(now),
        "last_synced_at": ts(now),
        "deleted_at": None,
        "cost_final": False,
        "trust_until": ts(now + timedelta(minutes=5)),
    }
    # the row's values come first in `order`, the constants after them (checked here)
    assert order[: len(names)] == names, order
    tail = tuple(constants[n] for n in order[len(names) :])

    def convert(row: dict[str, Any]) -> tuple[Any, ...]:
        values = list(picked(row))
        for i in times:
            if values[i] is not None:
                values[i] = ts(values[i])
        values[raw] = json.dumps(values[raw])
        return (*values, *tail)

    return convert


def floor_pass(url: str, rows: list[dict[str, Any]], size: int, inside: bool) -> Pass:
    """(rows/s, CPU µs/row of this process) of the bare driver over `rows`, one transaction per
    batch (see the module doc). `inside`: the conversion to driver values is on the clock, batch
    by batch, as in any program that writes these rows (the honest floor); otherwise every row
    is converted before the clock starts (the floor as first measured)."""
    sqlite = url.startswith("sqlite")
    writer = _floor_sqlite if sqlite else _floor_postgresql
    return writer(url, rows, size, inside)


def _clocked(
    rows: list[dict[str, Any]],
    size: int,
    convert: Callable[[dict[str, Any]], tuple[Any, ...]],
    inside: bool,
    write: Callable[[list[tuple[Any, ...]]], None],
) -> Pass:
    """Run `write` over the converted batches; what the clock saw (Clock.result)."""
    batches: list[Any] = list(chunks(rows, size))
    if not inside:
        batches = [[convert(row) for row in batch] for batch in batches]
    clock = Clock()
    for batch in batches:
        write([convert(row) for row in batch] if inside else batch)
        clock.check()
    return clock.result(len(rows))


def _floor_sqlite(url: str, rows: list[dict[str, Any]], size: int, inside: bool) -> Pass:
    import sqlite3

    from sqlalchemy.dialects import sqlite as sqlite_dialect

    compiled = _floor_upsert("sqlite").compile(dialect=sqlite_dialect.dialect())
    sql = str(compiled)
    convert = _floor_converter(list(compiled.positiontup or ()), True, datetime.now(UTC))
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        conn.execute("PRAGMA journal_mode=WAL")

        def write(batch: list[tuple[Any, ...]]) -> None:
            conn.executemany(sql, batch)
            conn.commit()

        return _clocked(rows, size, convert, inside, write)
    finally:
        conn.close()


def _floor_postgresql(url: str, rows: list[dict[str, Any]], size: int, inside: bool) -> Pass:
    import psycopg
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    from etl.storage.schema import room_sessions

    columns = [c.name for c in room_sessions.columns]
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
    moment = datetime.now(UTC)
    order = [n for n in staged if n not in ("deleted_at", "cost_final")]
    convert = _floor_converter([*order, "deleted_at", "cost_final"], False, moment)
    assert [*order, "deleted_at", "cost_final"] == staged, staged
    extra = {"now": moment, "trust_until": moment + timedelta(minutes=5)}
    copy_sql = f"COPY floor_stage ({', '.join(staged)}) FROM STDIN"
    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE TEMP TABLE floor_stage ({ddl}) ON COMMIT DELETE ROWS")
        conn.commit()

        def write(batch: list[tuple[Any, ...]]) -> None:
            with conn.cursor() as cur:
                with cur.copy(copy_sql) as copy:
                    for row in batch:
                        copy.write_row(row)
                cur.execute(sql, extra)
            conn.commit()

        return _clocked(rows, size, convert, inside, write)


FLOORS = ("honest", "pre-converted")  # conversion on the clock, or before it (as first measured)
PASSES = ("insert", "update", "unchanged")


def measure_floor(
    new_url: Callable[[str], str], rows: list[dict[str, Any]], size: int, inside: bool
) -> list[Pass]:
    """One floor's three passes, in a fresh database of its own."""
    from etl.storage.migrate import upgrade

    url = new_url(f"floor_{size}_{next(_serial)}")
    upgrade(url)
    return [
        floor_pass(url, rows, size, inside),
        floor_pass(url, newer(rows), size, inside),
        floor_pass(url, newer(rows), size, inside),
    ]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--batch-sizes", default="100,250,500,1000")
    p.add_argument("--database", default="sqlite,postgresql", help="comma-separated")
    p.add_argument("--floor", action="store_true", help="the raw driver paths beside each figure")
    p.add_argument("--repeat", type=int, default=1, help="runs of each; min/median/max shown")
    args = p.parse_args(argv)
    rows, parse_us = parsed_rows(args.rows)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    wall: list[list[str]] = []
    cpu: list[list[str]] = []
    total: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="roomsync-upsert-") as tmp:
        for backend in args.database.split(","):
            with database_factory(backend, Path(tmp)) as new_url:
                for size in sizes:
                    runs: list[list[Pass]] = []
                    floors: dict[str, list[list[Pass]]] = {k: [] for k in FLOORS}
                    for _ in range(args.repeat):  # interleaved: roomsync, floors, roomsync ...
                        runs.append(measure_backend(new_url, rows, size))
                        if args.floor:
                            for kind in FLOORS:
                                inside = kind == "honest"
                                floors[kind].append(measure_floor(new_url, rows, size, inside))
                    for k, name in enumerate(PASSES):
                        label = [backend, str(size), name]
                        wall.append([*label, *_cells(runs, floors, k, 0)])
                        cpu.append([*label, *_cells(runs, floors, k, 1)])
                        if backend == "postgresql":
                            total.append([*label, *_cells(runs, floors, k, 2)])
                        print(" | ".join(wall[-1] + cpu[-1][3:]), file=sys.stderr, flush=True)
    where = os.environ.get("PYTHONPATH") or str(ROOT)
    print(f"{args.rows:,} pre-parsed rows (parse_session: {parse_us:.0f} µs/row, not counted); ")
    print(f"etl from {where}; {args.repeat} run(s) each, min/median/max")
    print()
    floor_heads = [f"{kind} floor" for kind in FLOORS] if args.floor else []
    _print_table("rows/s (wall)", wall, floor_heads, "roomsync / {}")
    if args.floor:
        print()
        print(
            "Floors: the bare driver on the same parsed rows, one transaction per batch, the same"
            " upsert without RETURNING (SQLite executemany; PostgreSQL COPY + INSERT ... SELECT)."
            " honest: converting the rows to driver values (itemgetter, timestamps, json.dumps"
            " of raw) is on its clock, as in any program that writes them; pre-converted: the"
            " rows are converted before its clock starts (the floor as first measured)."
        )
    print()
    _print_table(
        "CPU µs/row of this process (SQLite: all of it; PostgreSQL: the client's)",
        cpu,
        floor_heads,
        "rows per CPU-s, roomsync / {}",
    )
    if total:
        print()
        _print_table(
            "CPU µs/row of this process and the PostgreSQL server together (the postmaster and"
            " its children, /proc)",
            total,
            floor_heads,
            "rows per CPU-s, roomsync / {}",
        )
    return 0


def _print_table(title: str, lines: list[list[str]], floors: list[str], ratio: str) -> None:
    print(f"{title}:")
    print()
    header = ["database", "rows/statement", "pass", "roomsync"]
    for floor in floors:
        header += [floor, ratio.format(floor)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for line in lines:
        print("| " + " | ".join(line) + " |")


def _spread(values: list[float], fmt: str) -> str:
    """min/median/max, or the one value."""
    if len(values) == 1:
        return format(values[0], fmt)
    return "/".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def _cells(
    runs: list[list[Pass]], floors: dict[str, list[list[Pass]]], k: int, measure: int
) -> list[str]:
    """Pass `k`'s figure (`measure` 0: rows/s, 1: CPU µs/row, 2: with the server's) for
    roomsync, then for each floor: its figure, and roomsync's throughput over the floor's
    (rows/s, or rows per CPU-second), run by run."""
    ours = [run[k][measure] for run in runs]
    fmt = ",.0f" if measure == 0 else ".1f"
    cells = [_spread(ours, fmt)]
    for kind in FLOORS:
        if not floors.get(kind):
            continue
        theirs = [f[k][measure] for f in floors[kind]]
        pairs = zip(ours, theirs, strict=True)
        ratios = [o / t for o, t in pairs] if measure == 0 else [t / o for o, t in pairs]
        cells += [_spread(theirs, fmt), _spread(ratios, ".2f")]
    return cells


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
        _SERVER[:] = [self.server._postmaster_pid()]
        return self.server.create_database

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            _SERVER.clear()
            self.server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
