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

import contextlib
import functools
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..config import CLOCK_SKEW
from ..outcomes import FINAL_STATUSES, Outcome
from ..records import LIST_ONLY_FIELDS, SessionRow
from . import ledger
from .dberrors import database_error, describe_error, map_errors
from .schema import UTCDateTime, room_sessions
from .sql import chunked, insert_for

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


@functools.cache
def upsert_statement(dialect: str) -> Any:
    """The one statement that upserts a batch and returns (id, first_synced_at) of written rows.

    Built and compiled once per dialect; `upsert_parameters` gives what to execute it with.
    - SQLite: `INSERT ... VALUES` executed with the rows as parameter sets, which SQLAlchemy's
      "insertmanyvalues" renders as one multi-row INSERT from the cached compiled form (up to
      1000 rows and the driver's parameter limit), instead of compiling a new statement with the
      rows in it for every batch.
    - PostgreSQL: `INSERT ... SELECT ... FROM jsonb_populate_recordset(:rows)`, the batch as one
      JSON parameter. Thousands of bind parameters cost more than the insert itself there:
      psycopg re-parses a statement that long for placeholders on every execution.
    """
    insert = insert_for(dialect, room_sessions)
    if dialect == "postgresql":
        insert = insert.from_select(*_recordset_source())
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
    return stmt.returning(room_sessions.c.id, room_sessions.c.first_synced_at)


_SYNCED = ("first_synced_at", "last_synced_at")


def _recordset_source() -> tuple[list[str], Any]:
    """(columns, SELECT) reading the batch from the `rows` JSON array, in the array's order.

    The record type is the table's own, so each value arrives cast to its column's type; both
    sync stamps come from the `now` parameter, once per batch.
    """
    columns = [c.name for c in room_sessions.columns]
    now = sa.bindparam("now", type_=UTCDateTime())
    records = (
        sa.func.jsonb_populate_recordset(
            sa.literal_column(f"NULL::{TABLE}"),
            sa.cast(sa.bindparam("rows", type_=sa.Text()), postgresql.JSONB),
        )
        .table_valued(*columns, with_ordinality="ordinality")
        .alias("r")
    )
    select = sa.select(
        *(now.label(name) if name in _SYNCED else records.c[name] for name in columns)
    ).order_by(records.c.ordinality)
    return columns, select


def _json_default(value: Any) -> str:
    """Timestamps as ISO 8601 with their offset; naive ones are refused, as UTCDateTime does."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def upsert_parameters(
    dialect: str, batch: Sequence[SessionRow], now: datetime, listed: Collection[str] = ()
) -> Any:
    """What `upsert_statement(dialect)` is executed with for this batch (rows in id order).

    Rows whose ids are in `listed` came from the list (see `cost_is_final`). Every written row
    is not deleted (any more): `deleted_at` goes in as null.
    A value that cannot be encoded is a StatementError, as SQLAlchemy's own binding raises.
    """
    trust_until = now + CLOCK_SKEW
    flags = [
        {"cost_final": cost_is_final(row, row["id"] in listed), "deleted_at": None} for row in batch
    ]
    if dialect != "postgresql":
        stamps = {"first_synced_at": now, "last_synced_at": now, "trust_until": trust_until}
        return [{**row, **flag, **stamps} for row, flag in zip(batch, flags, strict=True)]
    try:
        rows = json.dumps(
            [{**row, **flag} for row, flag in zip(batch, flags, strict=True)],
            default=_json_default,
            allow_nan=False,
        )
    except (TypeError, ValueError) as exc:
        raise sa.exc.StatementError(str(exc), None, None, exc) from None
    return {"rows": rows, "now": now, "trust_until": trust_until}


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
    target = url or engine.url
    try:
        with _transaction(engine, commit=not dry_run) as conn:
            outcomes = _write_rows(conn, batch, now, listed)
            _write_ledger(conn, failures or {}, [*outcomes, *resolved], run_id, now)
            mark_deleted(conn, list(gone), now)
        return BatchResult(outcomes)
    except (SQLAlchemyError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        if not _in_the_data(exc):
            raise database_error(exc, target, "writing to") from None
    with map_errors(target, "writing to"):
        outcomes, refused = _isolate(engine, batch, now, listed, dry_run)
        with _transaction(engine, commit=not dry_run) as conn:
            cleared = [i for i in outcomes if i not in refused]
            _write_ledger(conn, {**(failures or {}), **refused}, [*cleared, *resolved], run_id, now)
            mark_deleted(conn, list(gone), now)
    return BatchResult({**outcomes, **dict.fromkeys(refused, Outcome.FAILED)}, refused)


def _write_rows(
    conn: sa.Connection, batch: Sequence[SessionRow], now: datetime, listed: Collection[str]
) -> dict[str, Outcome]:
    """Upsert the rows and keep the relist queue in step; each id's outcome."""
    outcomes = dict.fromkeys((row["id"] for row in batch), Outcome.UNCHANGED)
    if not batch:
        return outcomes
    dialect = conn.dialect.name
    parameters = upsert_parameters(dialect, batch, now, listed)
    written = conn.execute(upsert_statement(dialect), parameters)
    for session_id, first_synced_at in written.all():
        new = first_synced_at == now
        outcomes[str(session_id)] = Outcome.INSERTED if new else Outcome.UPDATED
    ledger.unqueue_relist(conn, _cost_stored(conn, [r["id"] for r in batch if r["id"] in listed]))
    ledger.queue_relist(conn, _to_relist(batch, outcomes, listed))
    return outcomes


@contextlib.contextmanager
def _transaction(engine: Engine, *, commit: bool) -> Iterator[sa.Connection]:
    """engine.begin(), or a transaction that is always rolled back (a dry run)."""
    if commit:
        with engine.begin() as conn:
            yield conn
        return
    with engine.connect() as conn, conn.begin() as transaction:
        try:
            yield conn
        finally:
            transaction.rollback()


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


def _cost_stored(conn: sa.Connection, session_ids: Sequence[str]) -> list[str]:
    """Those of the ids whose row now holds its final cost: only those are done with the list."""
    t = room_sessions
    found: list[str] = []
    for chunk in chunked(session_ids):
        query = sa.select(t.c.id).where(t.c.id.in_(chunk), t.c.cost_final)
        found.extend(str(i) for i in conn.execute(query).scalars())
    return found


def _in_the_data(exc: BaseException) -> bool:
    """Whether the database (or the driver, binding values) refused what the rows hold, as
    opposed to being unreachable or broken."""
    if isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        # SQLite reports malformed or too deeply nested JSON as an OperationalError.
        return "JSON" in str(exc.orig)
    return True  # raised while encoding values: StatementError, ValueError, UnicodeError ...


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
        with _transaction(engine, commit=not dry_run) as conn:
            return _write_rows(conn, batch, now, listed), {}
    except (SQLAlchemyError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        if not _in_the_data(exc):
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
) -> list[tuple[str, datetime]]:
    """(id, created_at) of rows written final from a by-id body: only the list has their cost."""
    return [
        (row["id"], row["created_at"])
        for row in batch
        if row["id"] not in listed
        and outcomes[row["id"]] != Outcome.UNCHANGED
        and row["status"] in FINAL_STATUSES
    ]


def mark_deleted(conn: sa.Connection, session_ids: Sequence[str], now: datetime) -> None:
    """Stored sessions that answered 404 by id: deleted upstream since `now` (the first time
    only), out of the relist queue. The rows stay, for history."""
    t = room_sessions
    for chunk in chunked(session_ids):
        conn.execute(
            sa.update(t).where(t.c.id.in_(chunk), t.c.deleted_at.is_(None)).values(deleted_at=now)
        )
    ledger.unqueue_relist(conn, session_ids)
