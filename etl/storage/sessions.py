"""Storage: the batched upsert of parsed rows into `room_sessions`.

One `INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE` statement per batch, in a transaction:
- a payload whose `updated_at` is older than the stored one never overwrites it;
- a payload equal in every column to what is stored leaves the row untouched (`unchanged`);
- the list-only fields (cost and two flags) survive a refresh that lacks them, in their columns
  and in `raw`.
Rows are written in id order so that concurrent writers lock rows in the same order and cannot
deadlock each other. The same transaction keeps the failure ledger and the relist queue in step
with the rows (see `write_batch`); the ledger's own statements live in `ledger.py`.

A stored `updated_at` later than the write's clock plus `CLOCK_SKEW` came from a broken upstream
clock: newest-wins cannot trust it, so any fetch may replace that row.

When the database refuses a batch for a reason in the data (a value it cannot encode or hold),
the batch is split until the rows it refuses are alone: each of those fails its id, into the
failure ledger, and every other row is written. A database that is down is a DatabaseError.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..config import CLOCK_SKEW
from ..outcomes import FINAL_STATUSES, Outcome
from ..records import LIST_ONLY_FIELDS, SessionRow
from . import bulk, ledger
from .dberrors import database_error, describe_error, map_errors
from .schema import UTCDateTime, room_sessions, sync_failures, sync_relist
from .sql import in_the_data, insert_for, transaction

TABLE = room_sessions.name
_NEVER_UPDATED = ("id", "first_synced_at")
_NOT_COMPARED = ("id", "raw", "first_synced_at", "last_synced_at")

_SQLITE_PLACEHOLDER_PATH = "$.__roomsync_absent__"


def _sqlite_raw_merge() -> str:
    """New raw with the old list-only keys inserted where the new payload lacks them.

    json_insert only adds keys that are absent; a key absent from both sides would come in as
    null, so json_remove takes those out again.
    """
    inserts = ", ".join(f"'$.{k}', json({TABLE}.raw -> '$.{k}')" for k in LIST_ONLY_FIELDS)
    removes = ", ".join(
        f"CASE WHEN json_type(excluded.raw, '$.{k}') IS NULL "
        f"AND json_type({TABLE}.raw, '$.{k}') IS NULL THEN '$.{k}' "
        f"ELSE '{_SQLITE_PLACEHOLDER_PATH}' END"
        for k in LIST_ONLY_FIELDS
    )
    merged = f"json_remove(json_insert(excluded.raw, {inserts}), {removes})"
    # A row written by an old version may hold invalid JSON (`Infinity`): never read from it.
    return f"CASE WHEN json_valid({TABLE}.raw) THEN {merged} ELSE excluded.raw END"


def _postgresql_raw_merge() -> str:
    pairs = ", ".join(f"'{k}', {TABLE}.raw -> '{k}'" for k in LIST_ONLY_FIELDS)
    return f"jsonb_strip_nulls(jsonb_build_object({pairs})) || excluded.raw"


_RAW_MERGE = {"sqlite": _sqlite_raw_merge(), "postgresql": _postgresql_raw_merge()}


def _merged_values(excluded: Any, dialect: str) -> dict[str, Any]:
    """What each column becomes when an existing row is refreshed."""
    values: dict[str, Any] = {}
    for column in room_sessions.columns:
        if column.name in _NEVER_UPDATED:
            continue
        if column.name in LIST_ONLY_FIELDS:
            values[column.name] = sa.func.coalesce(excluded[column.name], column)
        elif column.name == "cost_final":
            values[column.name] = _merged_cost_final(excluded)
        elif column.name == "raw":
            values[column.name] = sa.literal_column(_RAW_MERGE[dialect])
        else:
            values[column.name] = excluded[column.name]
    return values


def _merged_cost_final(excluded: Any) -> Any:
    """A body without a cost (by id) keeps the stored verdict only if it describes the same
    moment (same updated_at); a newer one means the stored cost may no longer be the final one.
    A list item brings its own verdict (see `cost_is_final`)."""
    t = room_sessions
    keep = sa.and_(excluded.cost_in_dollars.is_(None), excluded.updated_at == t.c.updated_at)
    return sa.case((keep, t.c.cost_final), else_=excluded.cost_final)


def cost_is_final(row: SessionRow, listed: bool) -> bool:
    """A cost is final only when it comes from a list item of a completed session (the list
    gives live sessions a running figure, and get-by-id gives no cost at all). The upsert's
    own rule makes sure the item is at least as new as the stored row."""
    return listed and row["status"] in FINAL_STATUSES and row["cost_in_dollars"] is not None


STAGE = "roomsync_stage"  # PostgreSQL: the batch, copied in through the driver (bulk.py)
_COLUMNS = tuple(c.name for c in room_sessions.columns)
# The parsed row's columns, in the table's order; the table ends with the four set per batch.
_ROW_COLUMNS = _COLUMNS[:-4]
assert _COLUMNS[-4:] == ("first_synced_at", "last_synced_at", "deleted_at", "cost_final")
_TIMES = tuple(
    i for i, n in enumerate(_ROW_COLUMNS) if isinstance(room_sessions.c[n].type, UTCDateTime)
)
_RAW = _ROW_COLUMNS.index("raw")
_values_of = operator.itemgetter(*_ROW_COLUMNS)
# SQLite allows 32,766 parameters a statement: 33 a row, and trust_until
SQLITE_ROWS_PER_STATEMENT = 990


@functools.cache
def _stage_columns() -> tuple[sa.Column[Any], ...]:
    columns = [sa.Column(n, room_sessions.c[n].type) for n in _ROW_COLUMNS]
    return (*columns, sa.Column("cost_final", sa.Boolean()))


def _upsert(dialect: str, insert: Any) -> Any:
    """`insert` (rows from VALUES or a SELECT) made the upsert: newest wins, see the module."""
    merged = _merged_values(insert.excluded, dialect)
    changed = sa.or_(
        *(
            merged[c.name].is_distinct_from(c)
            for c in room_sessions.columns
            if c.name not in _NOT_COMPARED
        )
    )
    newer = insert.excluded.updated_at > room_sessions.c.updated_at
    same_age = insert.excluded.updated_at == room_sessions.c.updated_at
    untrusted = room_sessions.c.updated_at > sa.bindparam("trust_until", type_=UTCDateTime())
    stmt = insert.on_conflict_do_update(
        index_elements=[room_sessions.c.id],
        set_=merged,
        # a stored date from a broken clock (later than now plus the skew) cannot win: any
        # body that differs replaces it, and an identical one leaves the row unchanged
        where=sa.or_(newer, sa.and_(sa.or_(same_age, untrusted), changed)),
    )
    t = room_sessions
    if dialect == "postgresql":  # the id as text, and whether the row is new: no parsing
        now = sa.bindparam("now", type_=UTCDateTime())
        inserted = (t.c.first_synced_at == now).label("inserted")
        return stmt.returning(sa.cast(t.c.id, sa.Text()).label("id"), inserted)
    return stmt.returning(t.c.id, t.c.first_synced_at)


@functools.cache
def upsert_statement(dialect: str) -> Any:
    """PostgreSQL: the statement that upserts the staged batch (`bulk.stage`: COPY) and returns
    (id as text, inserted) of the rows it wrote; executed with two parameters (`now`,
    `trust_until`) whatever the batch's size, reading the rows in id order.

    SQLite: the same upsert with one VALUES row, compiled once (see `sqlite_upsert_sql`),
    returning (id, first_synced_at).
    """
    if dialect != "postgresql":
        values: dict[str, Any] = {name: sa.bindparam(name) for name in _COLUMNS}
        return _upsert(dialect, insert_for(dialect, room_sessions).values(values))
    stage = sa.table(STAGE, *(sa.column(c.name, c.type) for c in _stage_columns()))
    now = sa.bindparam("now", type_=UTCDateTime())
    picked = {
        **{name: stage.c[name] for name in _ROW_COLUMNS},
        "first_synced_at": now,
        "last_synced_at": now,
        "deleted_at": sa.null(),  # every written row is not deleted (any more)
        "cost_final": stage.c.cost_final,
    }
    source = sa.select(*(picked[name].label(name) for name in _COLUMNS)).order_by(stage.c.id)
    return _upsert(dialect, insert_for(dialect, room_sessions).from_select(_COLUMNS, source))


@functools.cache
def postgresql_upsert_sql() -> str:
    """PostgreSQL: `upsert_statement` as text for the driver, compiled once (pyformat
    parameters `now` and `trust_until`)."""
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    dialect = PGDialect_psycopg()  # type: ignore[no-untyped-call]
    return str(upsert_statement("postgresql").compile(dialect=dialect))


# PostgreSQL: after the upsert, the rest of the batch's write in one statement (one round
# trip): the batch's ids (the stage's) leave the failure ledger, and the rows written from a
# by-id body that are final (the ids bound) join the relist queue with their stored created_at.
# The stage empties itself at commit (bulk.create_stage).
_POSTGRESQL_AFTER_UPSERT = (
    f"WITH cleared AS (DELETE FROM {sync_failures.name} "
    f"WHERE session_id IN (SELECT id FROM {STAGE})) "
    f"INSERT INTO {sync_relist.name} (session_id, created_at) "
    f"SELECT id, created_at FROM {TABLE} WHERE {bulk.ids_in('postgresql', 'id')} "
    "ON CONFLICT (session_id) DO NOTHING"
)


# SQLite: the batch's ids leave the failure ledger (ledger.clear_failures), the ids' JSON array
# parsed only when the ledger holds anything: it is empty on most runs, and parsing 500 ids
# cost most of the statement.
_SQLITE_CLEAR_FAILURES = (
    f"DELETE FROM {sync_failures.name} WHERE session_id IN (SELECT value FROM json_each("
    f"CASE WHEN EXISTS (SELECT 1 FROM {sync_failures.name}) THEN ? ELSE '[]' END))"
)


@functools.cache
def _sqlite_parts() -> tuple[str, str, str]:
    """The compiled SQLite upsert cut around its one VALUES row: (head, row, tail)."""
    from sqlalchemy.dialects import sqlite

    compiled = upsert_statement("sqlite").compile(dialect=sqlite.dialect())
    assert list(compiled.positiontup or ()) == [*_COLUMNS, "trust_until"]
    text = str(compiled)
    start = text.index(" VALUES (") + len(" VALUES ")
    end = text.index(")", start) + 1
    assert set(text[start + 1 : end - 1].replace(", ", "")) == {"?"}
    return text[:start], text[start:end], text[end:]


@functools.lru_cache(maxsize=8)
def sqlite_upsert_sql(n: int) -> str:
    """The upsert with `n` VALUES rows, as text for the driver: built once per row count (the
    driver then keeps it prepared), executed with the rows' values flattened, in id order, and
    trust_until last."""
    head, row, tail = _sqlite_parts()
    return head + ", ".join([row] * n) + tail


def _json_encoder() -> Callable[[Any], str]:
    """`json.dumps` with its default arguments, the C encoder built once instead of per call.

    The text must stay byte-identical to `json.dumps(raw)`: SQLite's unchanged detection
    compares the stored JSON text, so another format would mark every stored row updated once.
    This is the very encoder `json.dumps` builds for each call (`JSONEncoder.iterencode` with
    `_one_shot`), without the circular-reference markers: `raw` comes from parsed JSON, which
    cannot be circular (and parse_session refuses nesting deeper than 32 levels); a self-nested
    value would be a RecursionError, which splits the batch like any value the rows cannot hold.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return json.dumps
    defaults = json.JSONEncoder()
    encode = make(
        None,
        defaults.default,
        json.encoder.encode_basestring_ascii,
        defaults.indent,
        defaults.key_separator,
        defaults.item_separator,
        defaults.sort_keys,
        defaults.skipkeys,
        defaults.allow_nan,
    )
    join = "".join

    def dumps(value: Any) -> str:
        return join(encode(value, 0))

    return dumps


encode_json = _json_encoder()


def _utc(value: datetime) -> datetime:
    """An aware timestamp in UTC; a naive one is refused, as UTCDateTime does."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given for a UTC column")
    return value.astimezone(UTC)


def driver_rows(
    dialect: str,
    batch: Sequence[SessionRow],
    listed: Collection[str] = (),
    before_verdict: tuple[Any, ...] = (),
) -> Iterator[list[Any]]:
    """The batch as the driver binds it, row by row, each value converted once: the row's
    columns in the table's order, `before_verdict`, then its cost verdict (`cost_is_final`).

    Timestamps must be aware (a naive one is refused, as UTCDateTime does); on SQLite they
    become UTC text in SQLAlchemy's format (`bulk.sqlite_time`, inlined: this loop is the
    upsert's hot path), on PostgreSQL psycopg sends them with their offset.
    `raw` is JSON text as SQLAlchemy's JSON type writes it (`json.dumps`, see `encode_json`).
    A value that cannot be converted is a ValueError or TypeError: the batch is split.

    A generator: each row's list is consumed (COPY, or one statement's flat parameters) and
    freed before the next is made, so a batch leaves no containers for the garbage collector
    to walk again and again (in bench/upsert.py's insert pass that walk was about an eighth of
    the upsert's CPU).
    """
    sqlite = dialect != "postgresql"
    times, raw, values_of, dumps = _TIMES, _RAW, _values_of, encode_json
    for row in batch:
        values = list(values_of(row))
        for i in times:
            value = values[i]
            if value is not None:
                if value.tzinfo is not UTC:
                    value = _utc(value)
                if sqlite:
                    values[i] = value.isoformat(" ", "microseconds")[:26]
        values[raw] = dumps(values[raw])
        values += before_verdict
        values.append(bool(listed) and cost_is_final(row, row["id"] in listed))
        yield values


def _upsert_rows(
    conn: sa.Connection, batch: Sequence[SessionRow], now: datetime, listed: Collection[str]
) -> list[tuple[str, bool]]:
    """Upsert the batch through the driver; (id, inserted) of every row written."""
    dialect = conn.dialect.name
    trust_until = now + CLOCK_SKEW
    if dialect == "postgresql":
        columns = _stage_columns()
        bulk.create_stage(conn, STAGE, columns)
        bulk.stage(conn, STAGE, [c.name for c in columns], driver_rows(dialect, batch, listed))
        times = {"now": now, "trust_until": trust_until}
        result = conn.exec_driver_sql(postgresql_upsert_sql(), times)
        return [(i, inserted) for i, inserted in result.all()]
    stamp = bulk.sqlite_time(now)
    stamps = (stamp, stamp, None)  # first_synced_at, last_synced_at, deleted_at
    trust = bulk.sqlite_time(trust_until)
    written = []
    for start in range(0, len(batch), SQLITE_ROWS_PER_STATEMENT):
        chunk = batch[start : start + SQLITE_ROWS_PER_STATEMENT]
        params: list[Any] = []
        extend = params.extend
        for values in driver_rows(dialect, chunk, listed, stamps):
            extend(values)
        params.append(trust)
        result = conn.exec_driver_sql(sqlite_upsert_sql(len(chunk)), tuple(params))
        written += [(i, first == stamp) for i, first in result.all()]
    return written


def _newest_per_id(rows: Sequence[SessionRow]) -> list[SessionRow]:
    """One row per id (the newest), sorted by id; a statement may not touch a row twice."""
    by_id: dict[str, SessionRow] = {}
    for row in rows:
        kept = by_id.get(row["id"])
        if kept is None or row["updated_at"] >= kept["updated_at"]:
            by_id[row["id"]] = row
    return [by_id[key] for key in sorted(by_id)]


def upsert_sessions(
    engine: Engine, rows: Sequence[SessionRow], now: datetime, url: str = ""
) -> dict[str, Outcome]:
    """Upsert parsed rows; return each id's outcome (see write_batch)."""
    return write_batch(engine, rows, now, url=url).outcomes


@dataclass
class BatchResult:
    """Each id's outcome; the rows the database refused (`failed`) with its reason."""

    outcomes: dict[str, Outcome]
    refused: dict[str, str] = field(default_factory=dict)


def write_batch(
    engine: Engine,
    rows: Sequence[SessionRow],
    now: datetime,
    *,
    failures: Mapping[str, str] | None = None,
    resolved: Collection[str] = (),
    run_id: int | None = None,
    listed: Collection[str] = (),
    gone: Collection[str] = (),
    url: str = "",
    dry_run: bool = False,
) -> BatchResult:
    """Write one batch in one transaction: the sessions, and the ledgers with them.

    `now` stamps first_synced_at (new rows) and last_synced_at (written rows); a returned row
    whose first_synced_at is `now` was inserted by this statement. `failures` (id -> error) are
    recorded against `run_id` for the next run to retry; the ids of the rows written, and the
    `resolved` ids (confirmed not found), leave the failure ledger. Rows whose ids are in
    `listed` came from the list and leave the relist queue once their cost is stored; the others
    (by-id bodies) that were written final join it, since only the list carries their final
    cost. Stored sessions whose ids are in `gone` answered 404 by id: they are marked deleted and
    leave the relist queue. Either all of it is written or none -- unless the database refuses
    rows for what they hold: then the batch is split (see the module's docstring).

    With `dry_run` the same statements run in transactions that are rolled back: the outcomes
    are what a real write would give (the same newest-wins rules), and nothing is kept.
    """
    batch = _newest_per_id(rows)
    if not (batch or failures or resolved or gone):
        return BatchResult({})  # nothing to write: not even a transaction
    target = url or engine.url
    try:
        with transaction(engine, commit=not dry_run) as conn:
            outcomes = _write_rows(conn, batch, now, listed)
            _write_ledger(conn, failures or {}, list(resolved), run_id, now)
            mark_deleted(conn, list(gone), now)
        return BatchResult(outcomes)
    except (SQLAlchemyError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        if not in_the_data(exc):
            raise database_error(exc, target, "writing to") from None
    with map_errors(target, "writing to"):
        outcomes, refused = _isolate(engine, batch, now, listed, dry_run)
        with transaction(engine, commit=not dry_run) as conn:
            cleared = [i for i in outcomes if i not in refused]
            _write_ledger(conn, {**(failures or {}), **refused}, [*cleared, *resolved], run_id, now)
            mark_deleted(conn, list(gone), now)
    return BatchResult({**outcomes, **dict.fromkeys(refused, Outcome.FAILED)}, refused)


def _write_rows(
    conn: sa.Connection, batch: Sequence[SessionRow], now: datetime, listed: Collection[str]
) -> dict[str, Outcome]:
    """Upsert the rows, and keep the failure ledger and the relist queue in step: the rows
    leave the failure ledger; listed rows whose stored cost is final leave the relist queue,
    and final rows written from a by-id body join it. Each id's outcome."""
    outcomes = dict.fromkeys((row["id"] for row in batch), Outcome.UNCHANGED)
    if not batch:
        return outcomes
    for session_id, inserted in _upsert_rows(conn, batch, now, listed):
        outcomes[session_id] = Outcome.INSERTED if inserted else Outcome.UPDATED
    dialect = conn.dialect.name
    relist = _to_relist(batch, outcomes, listed)
    if dialect == "postgresql":  # one statement (see _POSTGRESQL_AFTER_UPSERT)
        conn.exec_driver_sql(_POSTGRESQL_AFTER_UPSERT, (bulk.ids_param(dialect, relist),))
    else:
        conn.exec_driver_sql(_SQLITE_CLEAR_FAILURES, (bulk.ids_param(dialect, list(outcomes)),))
        ledger.queue_relist_stored(conn, relist)
    listed_ids = [row["id"] for row in batch if row["id"] in listed]
    if listed_ids:
        conn.exec_driver_sql(
            f"DELETE FROM sync_relist WHERE session_id IN (SELECT id FROM {TABLE} "
            f"WHERE cost_final AND {bulk.ids_in(dialect, 'id')})",
            (bulk.ids_param(dialect, listed_ids),),
        )
    return outcomes


def _write_ledger(
    conn: sa.Connection,
    failures: Mapping[str, str],
    cleared: Sequence[str],
    run_id: int | None,
    now: datetime,
) -> None:
    ledger.clear_failures(conn, cleared)
    if failures and run_id is not None:
        ledger.record_failures(conn, failures, run_id, now)


def _isolate(
    engine: Engine,
    batch: Sequence[SessionRow],
    now: datetime,
    listed: Collection[str],
    dry_run: bool = False,
) -> tuple[dict[str, Outcome], dict[str, str]]:
    """Write the batch in halves, each in its own transaction, down to the single rows the
    database refuses; return the outcomes of the rows written and why each other one was not."""
    try:
        with transaction(engine, commit=not dry_run) as conn:
            return _write_rows(conn, batch, now, listed), {}
    except (SQLAlchemyError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        if not in_the_data(exc):
            raise
        if len(batch) == 1:
            reason = describe_error(exc, engine.url)
            return {}, {batch[0]["id"]: f"the database refused the session: {reason}"}
    middle = len(batch) // 2
    first, refused_first = _isolate(engine, batch[:middle], now, listed, dry_run)
    second, refused_second = _isolate(engine, batch[middle:], now, listed, dry_run)
    return {**first, **second}, {**refused_first, **refused_second}


def _to_relist(
    batch: Sequence[SessionRow], outcomes: Mapping[str, Outcome], listed: Collection[str]
) -> list[str]:
    """Ids of rows written final from a by-id body: only the list has their cost."""
    return [
        row["id"]
        for row in batch
        if row["id"] not in listed
        and outcomes[row["id"]] != Outcome.UNCHANGED
        and row["status"] in FINAL_STATUSES
    ]


def mark_deleted(conn: sa.Connection, session_ids: Sequence[str], now: datetime) -> None:
    """Stored sessions that answered 404 by id: deleted upstream since `now` (the first time
    only), out of the relist queue. The rows stay, for history.

    Ids never stored (most 404s of a backfill) cost one read of the primary key and nothing
    else: only the stored ones are updated (the relist queue holds only stored, not deleted,
    sessions)."""
    if not session_ids:
        return
    dialect = conn.dialect.name
    probe = f"SELECT id FROM {TABLE} WHERE deleted_at IS NULL AND {bulk.ids_in(dialect, 'id')}"
    stored = [
        str(i) for (i,) in conn.exec_driver_sql(probe, (bulk.ids_param(dialect, session_ids),))
    ]
    if not stored:
        return
    t = room_sessions
    conn.execute(
        sa.update(t).where(t.c.id.in_(stored), t.c.deleted_at.is_(None)).values(deleted_at=now)
    )
    ledger.unqueue_relist(conn, stored)
