"""The ledgers: one `sync_runs` row per run, the ids waiting in `sync_failures`, and the
sessions waiting in `sync_relist` to be listed again for their final cost.

A run's row is written as `running` when it starts and completed when it ends; a run killed
outright leaves it `running`, and the next run that can tell it is dead marks it `killed`.
The failure and relist writes take the caller's connection: they belong to the transaction that
writes the batch's rows (`sessions.write_batch`), so a ledger entry never disagrees with a row.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..outcomes import COUNTED, RunOutcome
from . import bulk
from .schema import sync_failures, sync_relist, sync_runs
from .sql import chunked, insert_for, read_rows, write

COUNT_COLUMNS = ("requested", *COUNTED)
ERROR_MAX_CHARS = 2000


def start_run(engine: Engine, command: str) -> int:
    """Record a run as started and return its id."""
    (run_id,) = write(
        engine,
        sa.insert(sync_runs)
        .values(
            command=command,
            started_at=datetime.now(UTC),
            outcome=RunOutcome.RUNNING,
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        .returning(sync_runs.c.id),
    )
    return int(run_id)


def finish_run(
    engine: Engine,
    run_id: int,
    outcome: RunOutcome,
    counts: Mapping[str, Any],
    *,
    error: str | None = None,
    watermark: datetime | None = None,
    full_pass: bool | None = None,
) -> None:
    values: dict[str, Any] = {k: counts.get(k, 0) for k in COUNT_COLUMNS}
    write(
        engine,
        sa.update(sync_runs)
        .where(sync_runs.c.id == run_id)
        .values(
            finished_at=datetime.now(UTC),
            outcome=outcome,
            error=error,
            watermark=watermark,
            full_pass=full_pass,
            **values,
        ),
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_dead_runs(engine: Engine, *, all_of_command: str | None = None) -> int:
    """Mark `running` rows whose process is gone as `killed`; return how many.

    A row from this host whose pid no longer exists is dead. With `all_of_command`, every
    running row of that command is dead too: the caller holds the lock that such a run would
    hold, so none of them can still be alive, whatever host it ran on.
    """
    t = sync_runs
    running = sa.select(t.c.id, t.c.command, t.c.host, t.c.pid).where(
        t.c.outcome == RunOutcome.RUNNING
    )
    rows = read_rows(engine, running)
    here = socket.gethostname()
    dead = [
        run_id
        for run_id, command, host, pid in rows
        if command == all_of_command
        or (host == here and pid is not None and pid != os.getpid() and not _alive(pid))
    ]
    if dead:
        write(
            engine,
            sa.update(sync_runs)
            .where(sync_runs.c.id.in_(dead), sync_runs.c.outcome == RunOutcome.RUNNING)
            .values(outcome=RunOutcome.KILLED, error="the process ended without finishing the run"),
        )
    return len(dead)


def pending_failures(engine: Engine) -> list[str]:
    """Ids whose latest attempt failed, oldest failure first."""
    query = sa.select(sync_failures.c.session_id).order_by(
        sync_failures.c.failed_at, sync_failures.c.session_id
    )
    return [str(i) for i in _read(engine, query)]


def oldest_to_relist(engine: Engine) -> datetime | None:
    """created_at of the oldest session waiting to be listed again for its final cost."""
    values = _read(engine, sa.select(sa.func.min(sync_relist.c.created_at)))
    return values[0] if values else None


def last_watermark(engine: Engine) -> datetime | None:
    """Newest created_at listed by the latest sync that finished its listing."""
    query = (
        sa.select(sync_runs.c.watermark)
        .where(sync_runs.c.command == "sync", sync_runs.c.watermark.is_not(None))
        .order_by(sync_runs.c.id.desc())
        .limit(1)
    )
    values = _read(engine, query)
    return values[0] if values else None


def latest_recorded(engine: Engine, command: str) -> datetime | None:
    """The latest start or end recorded for any run of `command`, by time (not by run id)."""
    t = sync_runs
    query = sa.select(sa.func.max(t.c.started_at), sa.func.max(t.c.finished_at)).where(
        t.c.command == command
    )
    moments = [m for m in read_rows(engine, query)[0] if m is not None]
    return max(moments) if moments else None


# Writes that share the batch's transaction (the caller's connection).


def record_failures(
    conn: sa.Connection, failures: Mapping[str, str], run_id: int, now: datetime
) -> None:
    """Put ids in the failure ledger (or count one more attempt for those already there)."""
    values = [
        {
            "session_id": session_id,
            "run_id": run_id,
            "error": error[:ERROR_MAX_CHARS],
            "failed_at": now,
        }
        for session_id, error in sorted(failures.items())
    ]
    for chunk in chunked(values):
        stmt = insert_for(conn.dialect.name, sync_failures).values(chunk)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[sync_failures.c.session_id],
                set_={
                    "run_id": stmt.excluded.run_id,
                    "error": stmt.excluded.error,
                    "failed_at": stmt.excluded.failed_at,
                    "attempts": sync_failures.c.attempts + 1,
                },
            )
        )


def clear_failures(conn: sa.Connection, session_ids: Sequence[str]) -> None:
    """Take ids out of the failure ledger: they were stored, or confirmed not found."""
    _delete_ids(conn, sync_failures, session_ids)


def queue_relist(conn: sa.Connection, entries: Sequence[tuple[str, datetime]]) -> None:
    """Queue (id, created_at) pairs to be listed again; ids already queued stay as they are.
    Through the driver: the statement compiled once, the dates converted here."""
    if entries:
        sql, convert = _relist_statement(conn.dialect.name)
        conn.exec_driver_sql(sql, [(i, convert(created)) for i, created in entries])


def queue_relist_stored(conn: sa.Connection, session_ids: Sequence[str]) -> None:
    """Queue stored sessions by id, with their stored created_at (rows this transaction just
    wrote): one statement, the ids as one parameter; ids already queued stay as they are."""
    if session_ids:
        dialect = conn.dialect.name
        conn.exec_driver_sql(
            f"INSERT INTO {sync_relist.name} (session_id, created_at) "
            f"SELECT id, created_at FROM room_sessions WHERE {bulk.ids_in(dialect, 'id')} "
            "ON CONFLICT (session_id) DO NOTHING",
            (bulk.ids_param(dialect, session_ids),),
        )


def unqueue_relist(conn: sa.Connection, session_ids: Sequence[str]) -> None:
    """Take ids out of the relist queue: the list has been read for them."""
    _delete_ids(conn, sync_relist, session_ids)


def _delete_ids(conn: sa.Connection, table: sa.Table, session_ids: Sequence[str]) -> None:
    """One statement with the ids as one parameter (bulk.ids_in), none for no ids."""
    if session_ids:
        dialect = conn.dialect.name
        where = bulk.ids_in(dialect, "session_id")
        conn.exec_driver_sql(
            f"DELETE FROM {table.name} WHERE {where}", (bulk.ids_param(dialect, session_ids),)
        )


def _relist_statement(dialect: str) -> tuple[str, Callable[[datetime], Any]]:
    """The driver's text of the queueing INSERT, and the date conversion."""
    mark = bulk.placeholder(dialect)
    sql = (
        f"INSERT INTO {sync_relist.name} (session_id, created_at) VALUES ({mark}, {mark}) "
        "ON CONFLICT (session_id) DO NOTHING"
    )
    return sql, bulk.driver_time(dialect)


def _read(engine: Engine, query: Any) -> list[Any]:
    """The first column of every row of `query`."""
    return [row[0] for row in read_rows(engine, query)]
