"""The run ledger: one `sync_runs` row per run, and the ids waiting in `sync_failures`.

A run's row is written as `running` when it starts and completed when it ends; a run killed
outright leaves it `running`, and the next run that can tell it is dead marks it `killed`.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .db import database_error
from .records import FINAL_STATUSES
from .schema import room_sessions, sync_failures, sync_relist, sync_runs

RUNNING, OK, FAILED, INTERRUPTED, ERROR, KILLED = (
    "running",
    "ok",
    "failed",
    "interrupted",
    "error",
    "killed",
)
COUNT_COLUMNS = ("requested", "inserted", "updated", "unchanged", "not_found", "failed")


def _execute(engine: Engine, statement: Any) -> list[Any]:
    """Run one write in its own transaction; return the rows it returns, if any."""
    try:
        with engine.begin() as conn:
            result = conn.execute(statement)
            return list(result.scalars()) if result.returns_rows else []
    except SQLAlchemyError as exc:
        raise database_error(exc, engine.url, "writing to") from None


def start_run(engine: Engine, command: str) -> int:
    """Record a run as started and return its id."""
    (run_id,) = _execute(
        engine,
        sa.insert(sync_runs)
        .values(
            command=command,
            started_at=datetime.now(UTC),
            outcome=RUNNING,
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        .returning(sync_runs.c.id),
    )
    return int(run_id)


def finish_run(
    engine: Engine,
    run_id: int,
    outcome: str,
    counts: dict[str, int],
    *,
    error: str | None = None,
    watermark: datetime | None = None,
    full_pass: bool | None = None,
) -> None:
    values: dict[str, Any] = {k: counts.get(k, 0) for k in COUNT_COLUMNS}
    _execute(
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
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    sync_runs.c.id, sync_runs.c.command, sync_runs.c.host, sync_runs.c.pid
                ).where(sync_runs.c.outcome == RUNNING)
            ).all()
    except SQLAlchemyError as exc:
        raise database_error(exc, engine.url, "reading") from None
    here = socket.gethostname()
    dead = [
        run_id
        for run_id, command, host, pid in rows
        if command == all_of_command
        or (host == here and pid is not None and pid != os.getpid() and not _alive(pid))
    ]
    if dead:
        _execute(
            engine,
            sa.update(sync_runs)
            .where(sync_runs.c.id.in_(dead), sync_runs.c.outcome == RUNNING)
            .values(outcome=KILLED, error="the process ended without finishing the run"),
        )
    return len(dead)


def pending_failures(engine: Engine) -> list[str]:
    """Ids whose latest attempt failed, oldest failure first."""
    query = sa.select(sync_failures.c.session_id).order_by(
        sync_failures.c.failed_at, sync_failures.c.session_id
    )
    return [str(i) for i in _read(engine, query)]


def unfinished_session_ids(engine: Engine) -> list[str]:
    """Stored sessions whose status can still change (any status not final, null included),
    oldest first."""
    t = room_sessions
    query = (
        sa.select(t.c.id)
        .where(sa.or_(t.c.status.is_(None), t.c.status.not_in(FINAL_STATUSES)))
        .order_by(t.c.created_at)
    )
    return [str(session_id) for session_id in _read(engine, query)]


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


def _read(engine: Engine, query: Any) -> list[Any]:
    """The first column of every row of `query`."""
    return [row[0] for row in _rows(engine, query)]


def _rows(engine: Engine, query: Any) -> list[Any]:
    try:
        with engine.connect() as conn:
            return list(conn.execute(query).all())
    except SQLAlchemyError as exc:
        raise database_error(exc, engine.url, "reading") from None
