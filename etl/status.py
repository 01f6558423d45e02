"""`roomsync status`: what the ledger tables say, without SQL, read-only.

Sessions stored and live, ids failing, sessions waiting for their final cost, the newest session,
the last run of each command, the last successful run of each, the schema revision. The same
read model feeds the metrics file (etl.metrics), so both report the same counts.

Time: ages are measured with this machine's clock. A ledger time more than CLOCK_SKEW ahead of it
(the clock jumped back, or another host's clock runs ahead) means the clocks disagree: `status`
says so, and a success recorded "in the future" is not fresh -- otherwise a clock set back by
two days would keep `--max-age` green for two days while every sync fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .config import CLOCK_SKEW, mask_url
from .db import database_error
from .errors import DatabaseError
from .ledger import COUNT_COLUMNS
from .outcomes import RunOutcome
from .records import FINAL_STATUSES
from .schema import room_sessions, sync_failures, sync_runs

LIVE_STATUS = "in-progress"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `2h`, `1d` -> timedelta; anything else is a ValueError."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 2h or 1d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def live_condition() -> sa.ColumnElement[bool]:
    """Sessions still live upstream: in progress and not deleted there (a session that
    answered 404 by id keeps its last status, for history, but is not live)."""
    return sa.and_(room_sessions.c.status == LIVE_STATUS, room_sessions.c.deleted_at.is_(None))


def awaiting_final_cost_query() -> sa.Select[Any]:
    """How many sessions wait for their final cost: completed, not deleted, and the stored
    cost not final (`cost_pending` in the report and the views)."""
    t = room_sessions
    return sa.select(sa.func.count()).where(
        t.c.status.in_(FINAL_STATUSES), sa.not_(t.c.cost_final), t.c.deleted_at.is_(None)
    )


@dataclass(frozen=True)
class RunInfo:
    """One row of `sync_runs`."""

    id: int
    command: str
    outcome: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "outcome": self.outcome,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            **self.counts,
            "error": self.error,
        }


@dataclass
class Status:
    sessions: int
    live: int
    failing_ids: int
    awaiting_final_cost: int
    newest_session: dict[str, Any] | None
    runs: dict[str, RunInfo]
    last_success: dict[str, RunInfo]
    revision: str | None
    head: str
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def last_successful_sync(self) -> RunInfo | None:
        return self.last_success.get("sync")

    def sync_age(self) -> timedelta | None:
        """Time since the last successful sync finished; None when none ever did."""
        run = self.last_successful_sync
        if run is None or run.finished_at is None:
            return None
        return self.now - run.finished_at

    def fresh(self, max_age: timedelta) -> bool:
        """A sync succeeded within `max_age`, and not later than this clock allows (CLOCK_SKEW)."""
        age = self.sync_age()
        return age is not None and -CLOCK_SKEW <= age <= max_age

    def ledger_ahead(self) -> timedelta | None:
        """How far the newest time shown from the ledger lies ahead of `now`, when that is more
        than CLOCK_SKEW (the clocks disagree); None when they agree."""
        runs = (*self.runs.values(), *self.last_success.values())
        moments = [t for run in runs for t in (run.started_at, run.finished_at) if t is not None]
        if not moments:
            return None
        ahead = max(moments) - self.now
        return ahead if ahead > CLOCK_SKEW else None

    def to_dict(self) -> dict[str, Any]:
        sync_ok = self.last_successful_sync
        age, ahead = self.sync_age(), self.ledger_ahead()
        return {
            "sessions": self.sessions,
            "live": self.live,
            "failing_ids": self.failing_ids,
            "awaiting_final_cost": self.awaiting_final_cost,
            "newest_session": self.newest_session,
            "runs": {
                command: {
                    **run.to_dict(),
                    "last_success_at": _finished(self.last_success.get(command)),
                }
                for command, run in sorted(self.runs.items())
            },
            "last_successful_sync": None if sync_ok is None else sync_ok.to_dict(),
            "last_successful_sync_age_s": None if age is None else round(age.total_seconds(), 3),
            "clock_disagrees": ahead is not None,
            "ledger_ahead_s": None if ahead is None else round(ahead.total_seconds(), 3),
            "schema": {
                "revision": self.revision,
                "head": self.head,
                "at_head": self.revision == self.head,
            },
            "now": _iso(self.now),
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _finished(run: RunInfo | None) -> str | None:
    return None if run is None else _iso(run.finished_at)


def _run_info(row: Any) -> RunInfo:
    m = row._mapping
    return RunInfo(
        id=int(m["id"]),
        command=str(m["command"]),
        outcome=str(m["outcome"]),
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        counts={name: int(m[name]) for name in COUNT_COLUMNS},
        error=m["error"],
    )


def _latest_per_command(conn: sa.Connection, *where: Any) -> dict[str, RunInfo]:
    latest = sa.select(sa.func.max(sync_runs.c.id)).where(*where).group_by(sync_runs.c.command)
    rows = conn.execute(sa.select(sync_runs).where(sync_runs.c.id.in_(latest.scalar_subquery())))
    return {info.command: info for info in map(_run_info, rows)}


def _count(conn: sa.Connection, query: Any) -> int:
    return int(conn.execute(query).scalar_one())


def read_status(engine: Engine, now: datetime | None = None) -> Status:
    """Read every figure of `roomsync status` in one read transaction."""
    from alembic.runtime.migration import MigrationContext

    from .db import head_revision

    t = room_sessions
    head = head_revision()
    try:
        with engine.connect() as conn:
            revision = MigrationContext.configure(conn).get_current_revision()
            if revision != head:
                raise DatabaseError(
                    f"database {mask_url(engine.url)} is at {revision or 'an empty schema'}, "
                    f"not at {head}: run `roomsync db upgrade`"
                )
            count = sa.select(sa.func.count())
            newest = conn.execute(
                sa.select(t.c.id, t.c.created_at).order_by(t.c.created_at.desc()).limit(1)
            ).first()
            status = Status(
                sessions=_count(conn, count.select_from(t)),
                live=_count(conn, count.select_from(t).where(live_condition())),
                failing_ids=_count(conn, count.select_from(sync_failures)),
                awaiting_final_cost=_count(conn, awaiting_final_cost_query()),
                newest_session=None
                if newest is None
                else {"id": str(newest.id), "created_at": _iso(newest.created_at)},
                runs=_latest_per_command(conn),
                last_success=_latest_per_command(conn, sync_runs.c.outcome == RunOutcome.OK),
                revision=revision,
                head=head,
            )
    except SQLAlchemyError as exc:
        raise database_error(exc, engine.url, "reading") from None
    if now is not None:
        status.now = now
    return status


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d"


def _ago(delta: timedelta) -> str:
    if delta < -CLOCK_SKEW:
        return f"{_span(-delta)} ahead of this clock"
    return f"{_span(max(delta, timedelta(0)))} ago"


def clock_problem(status: Status) -> str | None:
    """One sentence when the ledger's times lie ahead of this machine's clock, else None."""
    ahead = status.ledger_ahead()
    if ahead is None:
        return None
    return (
        f"the clock disagrees: the ledger records times up to {_span(ahead)} ahead of this "
        f"machine's clock ({_iso(status.now)}); it jumped back, or another host's runs ahead"
    )


def render_text(status: Status, database: str) -> str:
    """The human form of `roomsync status`."""
    at_head = " (head)" if status.revision == status.head else f" (head is {status.head})"
    newest = status.newest_session
    lines = [
        f"database:     {database} at {status.revision or 'base'}{at_head}",
        f"sessions:     {status.sessions} stored, {status.live} live, "
        f"{status.awaiting_final_cost} waiting for their final cost",
        f"newest:       {newest['created_at']} ({newest['id']})" if newest else "newest:       -",
        f"failing ids:  {status.failing_ids}"
        + (" (`roomsync backfill --retry-failed` retries them)" if status.failing_ids else ""),
    ]
    sync_ok, age = status.last_successful_sync, status.sync_age()
    if sync_ok is None or age is None:
        lines.append("last sync ok: never")
    else:
        lines.append(f"last sync ok: {_iso(sync_ok.finished_at)} ({_ago(age)}, run {sync_ok.id})")
    problem = clock_problem(status)
    if problem is not None:
        lines.append(f"clock:        {problem}")
    lines.append("last runs:")
    if not status.runs:
        lines.append("  none yet")
    for command, run in sorted(status.runs.items()):
        counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in run.counts.items() if n)
        finished = _iso(run.finished_at) or "-"
        line = (
            f"  {command:<9} {run.outcome:<11} run {run.id}, started {_iso(run.started_at)}, "
            f"finished {finished}: {counts or 'nothing'}"
        )
        if run.error:
            line += f"; error: {run.error}"
        lines.append(line)
    return "\n".join(lines) + "\n"
