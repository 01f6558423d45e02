"""Storage of the rest of the bill: members, recordings, rooms and video log entries (charges),
and what fetching them remembers between runs (details fetched, detail failures, cursors).

Upserts, one `INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE` per table and batch, rows in id
order (concurrent writers lock rows in the same order):
- recordings and rooms carry `updated_at`: an older body never overwrites a newer row; one of
  the same age overwrites only if it differs (a stored date later than now plus CLOCK_SKEW is
  not trusted, as for sessions);
- members and log entries carry no `updated_at`: the latest fetch wins, and one equal in every
  column (raw included) to what is stored leaves the row untouched (`unchanged`);
- a log entry reported deleted (`{id, discarded_at, created_at}`) sets only `discarded_at` on
  a stored entry (the charge and the rest stay, for history) and is inserted with every other
  column null when it was never seen; the first `discarded_at` is kept. A live body of the entry
  clears it again (it came back);
- a written room is not deleted (`deleted_at` null); `mark_rooms_gone` marks the rooms a
  complete walk of the list no longer returned.

Details (`room_session_details`, migration 0008): the members and the recordings of a session
are written together with the session's detail state (fetched when, final or not) and the
detail failure ledger in one transaction. The rule that decides what is due is `detail_due`.
When the database refuses what a detail holds, the batch is split until the refusing
(session, detail) pairs are alone: each fails its detail, the others are written.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..config import CLOCK_SKEW
from ..outcomes import FINAL_STATUSES, Outcome
from . import bulk
from .dberrors import database_error, describe_error, map_errors
from .ledger import ERROR_MAX_CHARS
from .schema import (
    UTCDateTime,
    room_recordings,
    room_session_details,
    room_session_members,
    room_sessions,
    rooms,
    sync_cursors,
    sync_detail_failures,
    video_charges,
)
from .sql import chunked, in_the_data, insert_for, read_rows, transaction

MEMBERS = "members"
RECORDINGS = "recordings"
DETAILS: tuple[str, ...] = (MEMBERS, RECORDINGS)
DETAIL_TABLES = {MEMBERS: room_session_members, RECORDINGS: room_recordings}
CHARGES_CURSOR = "charges"

_NEVER_UPDATED = ("id", "first_synced_at")
_NOT_COMPARED = ("id", "first_synced_at", "last_synced_at")
_ERRORS = (SQLAlchemyError, ValueError, TypeError, OverflowError, RecursionError)

Row = Mapping[str, Any]


# --------------------------------------------------------------------------- the upserts


@functools.cache
def _upsert_statement(dialect: str, table: sa.Table) -> Any:
    """Upsert rows of `table` (executed with the rows as parameter sets, SQLAlchemy's
    "insertmanyvalues"); returns (id, first_synced_at) of the rows written."""
    insert = insert_for(dialect, table)
    excluded = insert.excluded
    values = {c.name: excluded[c.name] for c in table.columns if c.name not in _NEVER_UPDATED}
    changed = sa.or_(
        *(
            excluded[c.name].is_distinct_from(c)
            for c in table.columns
            if c.name not in _NOT_COMPARED
        )
    )
    where: Any = changed
    if "updated_at" in table.c:
        stored = table.c.updated_at
        untrusted = stored > sa.bindparam("trust_until", type_=UTCDateTime())
        where = sa.or_(
            excluded.updated_at > stored,
            sa.and_(sa.or_(excluded.updated_at == stored, untrusted), changed),
        )
    stmt = insert.on_conflict_do_update(index_elements=[table.c.id], set_=values, where=where)
    return stmt.returning(table.c.id, table.c.first_synced_at)


@functools.cache
def _discard_statement(dialect: str) -> Any:
    """A deleted log entry: inserted with only id, created_at, discarded_at and raw when new;
    on a stored entry only `discarded_at` is set (the first one is kept)."""
    t = video_charges
    insert = insert_for(dialect, t)
    stmt = insert.on_conflict_do_update(
        index_elements=[t.c.id],
        set_={
            "discarded_at": insert.excluded.discarded_at,
            "last_synced_at": insert.excluded.last_synced_at,
        },
        where=t.c.discarded_at.is_(None),
    )
    return stmt.returning(t.c.id, t.c.first_synced_at)


def _newest_per_id(rows: Iterable[Row]) -> list[Row]:
    """One row per id (the newest by updated_at where there is one, else the last), by id."""
    by_id: dict[str, Row] = {}
    for row in rows:
        kept = by_id.get(row["id"])
        if kept is None or "updated_at" not in row or row["updated_at"] >= kept["updated_at"]:
            by_id[row["id"]] = row
    return [by_id[key] for key in sorted(by_id)]


def _upsert(
    conn: sa.Connection, table: sa.Table, rows: Iterable[Row], now: datetime, **extra: Any
) -> dict[str, Outcome]:
    """Upsert `rows` into `table`; each id's outcome (inserted, updated or unchanged)."""
    batch = _newest_per_id(rows)
    outcomes = dict.fromkeys((row["id"] for row in batch), Outcome.UNCHANGED)
    if not batch:
        return outcomes
    stamps = {"first_synced_at": now, "last_synced_at": now, "trust_until": now + CLOCK_SKEW}
    parameters = [{**row, **extra, **stamps} for row in batch]
    _returning(conn, _upsert_statement(conn.dialect.name, table), parameters, now, outcomes)
    return outcomes


ROWS_PER_STATEMENT = 64


def _fixed_shapes(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """`rows` in slices of a few fixed sizes: ROWS_PER_STATEMENT, then halves down to 1 for
    the rest (a binary decomposition: at most 6 more statements a batch).

    Why: a multi-row upsert's text holds one VALUES group per row, and the driver keeps every
    text it runs prepared (sqlite3: 128 statements a connection, each a compiled program as
    large as its rows; PostgreSQL's psycopg prepares what it runs often). Batches of any size
    made a new text nearly every batch -- members, recordings and log pages rarely have the
    same count twice -- and filled every pooled connection's cache with large statements never
    run again: the memory of a first sync grew with the account. Seven texts a table stay."""
    start, size = 0, ROWS_PER_STATEMENT
    while start < len(rows):
        while size > len(rows) - start:
            size //= 2
        yield rows[start : start + size]
        start += size


def _returning(
    conn: sa.Connection,
    stmt: Any,
    parameters: list[dict[str, Any]],
    now: datetime,
    outcomes: dict[str, Outcome],
) -> None:
    """Run an upsert that returns (id, first_synced_at) of what it wrote; mark those ids."""
    for part in _fixed_shapes(parameters):
        for row_id, first_synced_at in conn.execute(stmt, part).all():
            outcomes[str(row_id)] = Outcome.INSERTED if first_synced_at == now else Outcome.UPDATED


def _discard(conn: sa.Connection, rows: Iterable[Row], now: datetime) -> dict[str, Outcome]:
    batch = _newest_per_id(rows)
    outcomes = dict.fromkeys((row["id"] for row in batch), Outcome.UNCHANGED)
    if not batch:
        return outcomes
    parameters = [
        {
            "id": row["id"],
            "created_at": row["created_at"],
            "discarded_at": row["discarded_at"],
            "raw": row["raw"],
            "first_synced_at": now,
            "last_synced_at": now,
        }
        for row in batch
    ]
    _returning(conn, _discard_statement(conn.dialect.name), parameters, now, outcomes)
    return outcomes


# --------------------------------------------------------------------------- rooms and charges


@dataclass
class Written:
    """Outcomes per id of one write, and the ids the database refused with why."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def counts(self) -> Counter[str]:
        counted: Counter[str] = Counter(str(o) for o in self.outcomes.values())
        if self.refused:
            counted[str(Outcome.FAILED)] += len(self.refused)
        return counted


def write_rooms(
    engine: Engine, rows: Sequence[Row], now: datetime, *, url: str = "", dry_run: bool = False
) -> Written:
    """Upsert rooms (a written room is not deleted: `deleted_at` goes in null)."""
    return _write_isolated(
        engine, rows, lambda conn, part: _upsert(conn, rooms, part, now, deleted_at=None),
        url=url, dry_run=dry_run, what="room",
    )  # fmt: skip


def write_charges(
    engine: Engine, rows: Sequence[Row], now: datetime, *, url: str = "", dry_run: bool = False
) -> Written:
    """Upsert video log entries: live ones whole, deleted ones by `discarded_at` only."""

    def write(conn: sa.Connection, part: Sequence[Row]) -> dict[str, Outcome]:
        live = [row for row in part if row["discarded_at"] is None]
        gone = [row for row in part if row["discarded_at"] is not None]
        return {**_upsert(conn, video_charges, live, now), **_discard(conn, gone, now)}

    return _write_isolated(engine, rows, write, url=url, dry_run=dry_run, what="log entry")


def _write_isolated(
    engine: Engine,
    rows: Sequence[Row],
    write: Any,
    *,
    url: str,
    dry_run: bool,
    what: str,
) -> Written:
    """`write(conn, rows)` in one transaction; when the database refuses what the rows hold,
    in halves down to the single rows it refuses, each of which fails alone."""
    target = url or engine.url
    try:
        with transaction(engine, commit=not dry_run) as conn:
            return Written(write(conn, rows))
    except _ERRORS as exc:
        if not in_the_data(exc):
            raise database_error(exc, target, "writing to") from None
        if len(rows) <= 1:
            reason = describe_error(exc, engine.url)
            return Written(
                {}, {row["id"]: f"the database refused the {what}: {reason}" for row in rows}
            )
    middle = len(rows) // 2
    first = _write_isolated(engine, rows[:middle], write, url=url, dry_run=dry_run, what=what)
    second = _write_isolated(engine, rows[middle:], write, url=url, dry_run=dry_run, what=what)
    return Written({**first.outcomes, **second.outcomes}, {**first.refused, **second.refused})


def room_ids(engine: Engine) -> set[str]:
    """Ids of the stored rooms not marked deleted."""
    query = sa.select(rooms.c.id).where(rooms.c.deleted_at.is_(None))
    return {str(row[0]) for row in read_rows(engine, query)}


def mark_rooms_gone(
    engine: Engine, listed: Collection[str], now: datetime, *, url: str = "", dry_run: bool = False
) -> int:
    """After a complete walk of the rooms list: mark every stored room it did not return as
    deleted since `now` (the row stays: sessions name it); return how many."""
    gone = sorted(room_ids(engine) - set(listed))
    with (
        map_errors(url or engine.url, "writing to"),
        transaction(engine, commit=not dry_run) as conn,
    ):
        for chunk in chunked(gone):
            conn.execute(
                sa.update(rooms)
                .where(rooms.c.id.in_(chunk), rooms.c.deleted_at.is_(None))
                .values(deleted_at=now)
            )
    return len(gone)


# --------------------------------------------------------------------------- details


@dataclass(frozen=True)
class Detail:
    """What one fetch of a session's members or recordings brought: every item, and whether
    nothing of it can change any more (see etl.bill_sync.is_final)."""

    session_id: str
    detail: str  # MEMBERS or RECORDINGS
    rows: Sequence[Row]
    final: bool


@dataclass
class DetailWritten:
    """Items written per detail kind and outcome, and the (session, detail) pairs refused."""

    items: dict[str, Counter[str]] = field(default_factory=dict)
    refused: dict[tuple[str, str], str] = field(default_factory=dict)


def write_details(
    engine: Engine,
    details: Sequence[Detail],
    now: datetime,
    *,
    failures: Mapping[tuple[str, str], str] | None = None,
    run_id: int | None = None,
    url: str = "",
    dry_run: bool = False,
) -> DetailWritten:
    """Write fetched details and the detail ledger in one transaction: the items, each
    session's detail state, the failure ledger (`failures` recorded against `run_id`; the pairs
    written leave it). A pair whose items the database refuses fails alone (its reason joins
    the ledger); the other pairs are written."""
    target = url or engine.url
    failures = dict(failures or {})
    try:
        with transaction(engine, commit=not dry_run) as conn:
            items = _write_details(conn, details, now)
            _detail_ledger(conn, failures, details, run_id, now)
        return DetailWritten(items)
    except _ERRORS as exc:
        if not in_the_data(exc):
            raise database_error(exc, target, "writing to") from None
    with map_errors(target, "writing to"):
        items, refused = _isolate_details(engine, details, now, dry_run)
        written = [d for d in details if (d.session_id, d.detail) not in refused]
        with transaction(engine, commit=not dry_run) as conn:
            _detail_ledger(conn, {**failures, **refused}, written, run_id, now)
    return DetailWritten(items, refused)


def _write_details(
    conn: sa.Connection, details: Sequence[Detail], now: datetime
) -> dict[str, Counter[str]]:
    items: dict[str, Counter[str]] = {kind: Counter() for kind in DETAILS}
    for kind in DETAILS:
        of_kind = [d for d in details if d.detail == kind]
        rows = [row for d in of_kind for row in d.rows]
        outcomes = _upsert(conn, DETAIL_TABLES[kind], rows, now)
        items[kind].update(str(o) for o in outcomes.values())
        _set_state(conn, kind, [(d.session_id, d.final) for d in of_kind], now)
    return items


def _set_state(
    conn: sa.Connection, kind: str, states: Sequence[tuple[str, bool]], now: datetime
) -> None:
    if not states:
        return
    t = room_session_details
    insert = insert_for(conn.dialect.name, t)
    fetched, final = f"{kind}_fetched_at", f"{kind}_final"
    stmt = insert.on_conflict_do_update(
        index_elements=[t.c.session_id],
        set_={fetched: insert.excluded[fetched], final: insert.excluded[final]},
    )
    values = [
        {"session_id": sid, fetched: now, final: is_final} for sid, is_final in sorted(set(states))
    ]
    for chunk in chunked(values):
        conn.execute(stmt, chunk)


def _isolate_details(
    engine: Engine, details: Sequence[Detail], now: datetime, dry_run: bool
) -> tuple[dict[str, Counter[str]], dict[tuple[str, str], str]]:
    try:
        with transaction(engine, commit=not dry_run) as conn:
            return _write_details(conn, details, now), {}
    except _ERRORS as exc:
        if not in_the_data(exc):
            raise
        if len(details) == 1:
            one = details[0]
            reason = describe_error(exc, engine.url)
            return {}, {
                (one.session_id, one.detail): f"the database refused the {one.detail}: {reason}"
            }
    middle = len(details) // 2
    first, refused_first = _isolate_details(engine, details[:middle], now, dry_run)
    second, refused_second = _isolate_details(engine, details[middle:], now, dry_run)
    items: dict[str, Counter[str]] = {kind: Counter() for kind in DETAILS}
    for part in (first, second):
        for kind, counted in part.items():
            items[kind].update(counted)
    return items, {**refused_first, **refused_second}


def _detail_ledger(
    conn: sa.Connection,
    failures: Mapping[tuple[str, str], str],
    written: Sequence[Detail],
    run_id: int | None,
    now: datetime,
) -> None:
    t = sync_detail_failures
    done: dict[str, list[str]] = {}
    for sid, kind in sorted({(d.session_id, d.detail) for d in written} - set(failures)):
        done.setdefault(kind, []).append(sid)
    # One statement per kind with the ids as one parameter (bulk.ids_in): one text whatever
    # the count, compiled once by SQLAlchemy and prepared once by the driver (an OR of pairs
    # compiled a new statement for every size; an `IN` list still made a new text per size,
    # each kept prepared by the driver's statement cache: both grew with the account).
    dialect = conn.dialect.name
    mark = bulk.placeholder(dialect)
    delete = f"DELETE FROM {t.name} WHERE detail = {mark} AND {bulk.ids_in(dialect, 'session_id')}"
    for kind, sids in done.items():
        conn.exec_driver_sql(delete, (kind, bulk.ids_param(dialect, sids)))
    if not failures or run_id is None:
        return
    insert = insert_for(conn.dialect.name, t)
    stmt = insert.on_conflict_do_update(
        index_elements=[t.c.session_id, t.c.detail],
        set_={
            "run_id": insert.excluded.run_id,
            "error": insert.excluded.error,
            "failed_at": insert.excluded.failed_at,
            "attempts": t.c.attempts + 1,
        },
    )
    values = [
        {
            "session_id": sid,
            "detail": kind,
            "run_id": run_id,
            "error": error[:ERROR_MAX_CHARS],
            "failed_at": now,
        }
        for (sid, kind), error in sorted(failures.items())
    ]
    for values_chunk in chunked(values):
        conn.execute(stmt, values_chunk)


def record_detail_failures(
    engine: Engine,
    failures: Mapping[tuple[str, str], str],
    run_id: int,
    now: datetime,
    *,
    url: str = "",
    dry_run: bool = False,
) -> None:
    """Detail failures with nothing written beside them (every fetch of the batch failed)."""
    if not failures:
        return
    with (
        map_errors(url or engine.url, "writing to"),
        transaction(engine, commit=not dry_run) as conn,
    ):
        _detail_ledger(conn, failures, [], run_id, now)


def pending_detail_failures(engine: Engine) -> list[tuple[str, str]]:
    """(session id, detail) pairs whose last fetch failed, oldest failure first."""
    t = sync_detail_failures
    query = sa.select(t.c.session_id, t.c.detail).order_by(
        t.c.failed_at, t.c.session_id, t.c.detail
    )
    return [(str(sid), str(kind)) for sid, kind in read_rows(engine, query)]


def detail_due(
    engine: Engine,
    kinds: Collection[str],
    now: datetime,
    settle: timedelta,
    session_ids: Sequence[str] | None = None,
    *,
    refresh: bool = False,
) -> dict[str, set[str]]:
    """Which details of which sessions to fetch: session id -> kinds.

    The rule: a session's members (recordings) are fetched once it is stored completed and not
    deleted, and fetched again only while what was fetched is not final (a member without
    `leave_time`, a recording not `completed`) and the session ended less than `settle` ago (a
    vendor that never finishes a recording cannot cost a request per run forever). A detail
    never fetched is due however old its session. Sessions that are live, have a null status or
    are deleted are not due: their detail can still change, or cannot be asked for.
    With `session_ids`, only those; with `refresh` as well, each of them stored completed is
    due whatever its state (`fetch` asks again for what it is given).
    """
    kinds = [k for k in DETAILS if k in kinds]
    if not kinds:
        return {}
    s = room_sessions
    base = _due_query(kinds, now, settle, refresh=refresh)
    due_ids: dict[str, set[str]] = {}
    queries = (
        [base] if session_ids is None else [base.where(s.c.id.in_(c)) for c in chunked(session_ids)]
    )
    for query in queries:
        for row in read_rows(engine, query):
            wanted = {kind for kind, flag in zip(kinds, row[1:], strict=True) if flag}
            if wanted:
                due_ids[str(row[0])] = wanted
    return due_ids


def detail_due_page(
    engine: Engine,
    kinds: Collection[str],
    now: datetime,
    settle: timedelta,
    after: str | None,
    limit: int,
) -> list[tuple[str, tuple[str, ...]]]:
    """One page of `detail_due` over every stored session, in id order from past `after`: up to
    `limit` sessions stored completed and not deleted, each with the kinds due of it (empty
    when none is: the page's last id is where the next page starts, and a page shorter than
    `limit` is the last). A first sync walks the account this way, a page held at a time."""
    kinds = [k for k in DETAILS if k in kinds]
    if not kinds:
        return []
    s = room_sessions
    query = _due_query(kinds, now, settle, refresh=False).order_by(s.c.id).limit(limit)
    if after is not None:
        query = query.where(s.c.id > after)
    shared: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per combination of kinds
    page = []
    for row in read_rows(engine, query):
        wanted = tuple(kind for kind, flag in zip(kinds, row[1:], strict=True) if flag)
        page.append((str(row[0]), shared.setdefault(wanted, wanted)))
    return page


def _due_query(kinds: Sequence[str], now: datetime, settle: timedelta, *, refresh: bool) -> Any:
    """(session id, one due flag per kind) of every session stored completed, not deleted."""
    s, d = room_sessions, room_session_details
    recent = sa.or_(s.c.end_time.is_(None), s.c.end_time >= now - settle)
    columns = []
    for kind in kinds:
        fetched, final = d.c[f"{kind}_fetched_at"], d.c[f"{kind}_final"]
        due = sa.true() if refresh else sa.or_(fetched.is_(None), sa.and_(sa.not_(final), recent))
        columns.append(sa.case((due, sa.true()), else_=sa.false()).label(kind))
    return (
        sa.select(s.c.id, *columns)
        .select_from(s.outerjoin(d, d.c.session_id == s.c.id))
        .where(s.c.status.in_(FINAL_STATUSES), s.c.deleted_at.is_(None))
    )


def stored_sessions(engine: Engine, session_ids: Sequence[str]) -> set[str]:
    """Those of `session_ids` stored and not deleted (detail is asked only for them)."""
    t = room_sessions
    found: set[str] = set()
    for chunk in chunked(session_ids):
        query = sa.select(t.c.id).where(t.c.id.in_(chunk), t.c.deleted_at.is_(None))
        found.update(str(row[0]) for row in read_rows(engine, query))
    return found


# --------------------------------------------------------------------------- cursors


def cursor(engine: Engine, name: str) -> datetime | None:
    rows = read_rows(engine, sa.select(sync_cursors.c.moment).where(sync_cursors.c.name == name))
    return rows[0][0] if rows else None


def set_cursor(
    engine: Engine,
    name: str,
    moment: datetime,
    now: datetime,
    *,
    url: str = "",
    dry_run: bool = False,
) -> None:
    t = sync_cursors
    with (
        map_errors(url or engine.url, "writing to"),
        transaction(engine, commit=not dry_run) as conn,
    ):
        insert = insert_for(conn.dialect.name, t)
        conn.execute(
            insert.values(name=name, moment=moment, updated_at=now).on_conflict_do_update(
                index_elements=[t.c.name],
                set_={"moment": insert.excluded.moment, "updated_at": insert.excluded.updated_at},
            )
        )


def oldest_open_charge(engine: Engine, not_before: datetime) -> datetime | None:
    """created_at of the oldest stored log entry, created at or after `not_before`, that is not
    deleted and not `completed`: its charge can still change, so the next walk reaches it."""
    t = video_charges
    query = sa.select(sa.func.min(t.c.created_at)).where(
        t.c.discarded_at.is_(None),
        sa.or_(t.c.status.is_(None), t.c.status.not_in(FINAL_STATUSES)),
        t.c.created_at >= not_before,
    )
    rows = read_rows(engine, query)
    return rows[0][0] if rows else None


def detail_failure_count(conn: sa.Connection) -> int:
    """Pairs in the detail failure ledger (read inside status's read transaction)."""
    return int(
        conn.execute(sa.select(sa.func.count()).select_from(sync_detail_failures)).scalar_one()
    )


@dataclass(frozen=True)
class BillTotals:
    """Whole-table figures of the bill: attendance and cost by the source that states it."""

    members: int  # attendance intervals
    participant_minutes: float
    recordings: int
    rooms: int
    charges: int  # log entries not deleted
    session_cost: float | None  # final list costs of sessions
    member_cost: float | None
    recording_cost: float | None
    charge: float | None  # log entries not deleted


def bill_totals(engine: Engine) -> BillTotals:
    """The figures `roomsync demo` closes with (sums over what is known; None when nothing is)."""
    m, r, s, c = room_session_members, room_recordings, room_sessions, video_charges
    live_charges = c.c.discarded_at.is_(None)
    query = sa.select(
        sa.select(sa.func.count()).select_from(m).scalar_subquery(),
        sa.select(sa.func.sum(m.c.duration)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(r).scalar_subquery(),
        sa.select(sa.func.count())
        .select_from(rooms)
        .where(rooms.c.deleted_at.is_(None))
        .scalar_subquery(),
        sa.select(sa.func.count()).select_from(c).where(live_charges).scalar_subquery(),
        sa.select(sa.func.sum(s.c.cost_in_dollars))
        .where(s.c.cost_final, s.c.deleted_at.is_(None))
        .scalar_subquery(),
        sa.select(sa.func.sum(m.c.cost_in_dollars)).scalar_subquery(),
        sa.select(sa.func.sum(r.c.cost_in_dollars)).scalar_subquery(),
        sa.select(sa.func.sum(c.c.charge)).where(live_charges).scalar_subquery(),
    )
    row = read_rows(engine, query)[0]
    money = [None if v is None else round(float(v), 6) for v in row[5:]]
    return BillTotals(
        members=int(row[0]),
        participant_minutes=round(float(row[1] or 0) / 60, 1),
        recordings=int(row[2]),
        rooms=int(row[3]),
        charges=int(row[4]),
        session_cost=money[0],
        member_cost=money[1],
        recording_cost=money[2],
        charge=money[3],
    )
