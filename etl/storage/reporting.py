"""The SQL behind `roomsync report` and `roomsync status` (and the metrics file), and the read
models they return: report rows grouped by period, room or status, and the ledger's figures.

A session belongs to the period of its `start_time`, or of its `created_at` where `start_time` is
null; periods are UTC days, ISO weeks (labelled by their Monday) and months. Sums cover the
values that are known: a group where no session has a duration (or a final cost) reports null,
not 0, so that "unknown" never reads as "free" or "no minutes". Only final costs count (a listed
completed session's; see sessions.cost_is_final); `cost_pending` says how many completed
sessions still wait for theirs. Sessions deleted upstream are counted as `deleted`, never as
completed or in progress (by status they form the group `deleted`).

The status figures are read in one read transaction, after the one revision check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..config import CLOCK_SKEW, GROUPINGS, TIME_GROUPINGS
from ..outcomes import FINAL_STATUSES, LIVE_UPSTREAM, RunOutcome, SessionStatus
from .dberrors import map_errors
from .ledger import COUNT_COLUMNS
from .migrate import require_head, revision_of
from .schema import (
    room_recordings,
    room_session_members,
    room_sessions,
    sync_detail_failures,
    sync_failures,
    sync_runs,
    video_charges,
)

LIVE_STATUS = LIVE_UPSTREAM  # live upstream (see etl.outcomes on the two meanings of live)
NO_ROOM = "(no room)"
NO_STATUS = "(none)"
JSON_KEYS = (
    "group",
    "sessions",
    "completed",
    "in_progress",
    "duration_s",
    "avg_duration_s",
    "cost_usd",
    "sessions_with_cost",
    "cost_pending",
    "deleted",
    "participant_minutes",
    "member_cost_usd",
    "recording_cost_usd",
    "charge_usd",
    "peak_sessions",
    "peak_members",
    "max_members",
    "note",
)
# A sum beyond what a double holds (two costs of 1e308): reported for its row, not as Infinity.
COST_TOO_LARGE = "cost_usd does not fit a double (over 1.8e308): shown as unknown"
DELETED = "deleted"  # by status: sessions deleted upstream, whatever status they were stored with


@dataclass(frozen=True)
class ReportRow:
    """One group of sessions: a period, a room or a status."""

    group: str
    sessions: int
    completed: int
    in_progress: int
    duration_s: int | None  # sum of known API durations; None when none is known
    timed_sessions: int  # sessions with a known duration
    cost_usd: float | None  # sum of final costs; None when none is known
    name: str | None = None  # by room: the room's name alone, for chart labels
    note: str | None = None  # why a value of this row is shown as unknown, if it is
    sessions_with_cost: int = 0  # sessions whose final cost is in cost_usd
    cost_pending: int = 0  # completed (not deleted) sessions still waiting for their final cost
    deleted: int = 0  # sessions deleted upstream: counted here, never as completed or live
    participant_minutes: float | None = None  # members' known durations / 60
    member_cost_usd: float | None = None  # sum of the members' costs
    recording_cost_usd: float | None = None  # sum of the recordings' costs
    charge_usd: float | None = None  # sum of the video log charges not deleted upstream
    peak_sessions: int | None = None  # by period: most sessions live at one instant
    peak_members: int | None = None  # by period or room: most members present at one instant
    max_members: int | None = None  # by room: the room's capacity, to read the peak against
    key: str | None = None  # by room or session: the room's or session's id
    moment: datetime | None = None  # by session: its start (or creation), for the order

    @property
    def avg_duration_s(self) -> float | None:
        """Mean known duration, rounded half up to 0.1 s as SQL's round() does in the views."""
        if not self.timed_sessions or self.duration_s is None:
            return None
        mean = Decimal(self.duration_s) / self.timed_sessions
        return float(mean.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))

    @property
    def minutes(self) -> float:
        """Known minutes, for the chart: an unknown duration counts as no minutes."""
        return (self.duration_s or 0) / 60

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in JSON_KEYS}


# --------------------------------------------------------------------------- report


def check_range(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise ValueError(
            f"--since ({since:%Y-%m-%d %H:%M:%S} UTC) must be before "
            f"--until ({until:%Y-%m-%d %H:%M:%S} UTC); --until is exclusive"
        )


def _moment() -> sa.ColumnElement[Any]:
    """When a session happened: its start, or its creation when it never started."""
    return sa.func.coalesce(room_sessions.c.start_time, room_sessions.c.created_at)


def _sqlite_period(by: str, moment: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    # UTC text 'YYYY-MM-DD HH:MM:SS.ffffff', cut as text: SQLite's time functions round fractions
    # to milliseconds, so they are given whole dates only (as migration 0003's views do).
    day = sa.func.substr(moment, 1, 10, type_=sa.String)
    if by == "day":
        return day
    if by == "week":
        return sa.func.date(day, "-6 days", "weekday 1", type_=sa.String)
    return sa.func.substr(moment, 1, 7, type_=sa.String)


def _postgresql_period(by: str, moment: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    utc = sa.func.timezone("UTC", moment)  # never the session's TimeZone setting
    if by == "day":
        return sa.func.to_char(utc, "YYYY-MM-DD", type_=sa.String)
    if by == "week":
        return sa.func.to_char(sa.func.date_trunc("week", utc), "YYYY-MM-DD", type_=sa.String)
    return sa.func.to_char(utc, "YYYY-MM", type_=sa.String)


def _group_key(by: str, dialect: str) -> sa.ColumnElement[Any]:
    t = room_sessions
    if by in ("room", "session"):
        return t.c.room_id if by == "room" else t.c.id
    if by == "status":
        return sa.case((t.c.deleted_at.is_not(None), DELETED), else_=t.c.status)
    if dialect == "sqlite":
        return _sqlite_period(by, _moment())
    if dialect == "postgresql":
        return _postgresql_period(by, _moment())
    raise ValueError(f"reports by {by} are written for SQLite and PostgreSQL, not {dialect}")


def _room_name(room_id: sa.ColumnElement[Any]) -> sa.ScalarSelect[Any]:
    """The room's newest display_name (else name), over all its sessions, as the views do."""
    r = room_sessions.alias("r")
    return (
        sa.select(sa.func.coalesce(r.c.display_name, r.c.name))
        .where(r.c.room_id == room_id)
        .order_by(
            r.c.display_name.is_(None),
            sa.func.coalesce(r.c.start_time, r.c.created_at).desc(),
            r.c.id.desc(),
        )
        .limit(1)
        .scalar_subquery()
    )


def build_query(
    by: str, dialect: str, since: datetime | None = None, until: datetime | None = None
) -> sa.Select[Any]:
    """One row per group: key, [room name,] sessions, completed, in progress, duration sum and
    count, cost sum. Since is inclusive, until exclusive."""
    if by not in GROUPINGS:
        raise ValueError(f"cannot group by {by!r}: choose one of {', '.join(GROUPINGS)}")
    t = room_sessions
    filters = []
    if since is not None:
        filters.append(_moment() >= since)
    if until is not None:
        filters.append(_moment() < until)
    members, recordings, charges = _detail_sums(dialect)
    inner = (
        sa.select(
            _group_key(by, dialect).label("grp"),
            t.c.status,
            t.c.duration,
            t.c.cost_in_dollars,
            t.c.cost_final,
            t.c.deleted_at.is_not(None).label("deleted"),
            sa.func.coalesce(t.c.display_name, t.c.name).label("shown_name"),
            _moment().label("moment"),
            members.c.seconds.label("member_seconds"),
            members.c.cost.label("member_cost"),
            recordings.c.cost.label("recording_cost"),
            charges.c.cost.label("charge"),
        )
        .select_from(
            t.outerjoin(members, members.c.sid == t.c.id)
            .outerjoin(recordings, recordings.c.sid == t.c.id)
            .outerjoin(charges, charges.c.sid == t.c.id)
        )
        .where(*filters)
        .subquery("s")
    )
    kept = sa.not_(inner.c.deleted)
    final_cost = sa.case((inner.c.cost_final, inner.c.cost_in_dollars))
    columns: list[Any] = [inner.c.grp]
    if by == "room":
        columns.append(_room_name(inner.c.grp))
    elif by == "session":  # one session per group: its own name and time
        columns += [sa.func.max(inner.c.shown_name), sa.func.max(inner.c.moment)]
    columns += [
        sa.func.count(),
        sa.func.sum(
            sa.case((sa.and_(kept, inner.c.status == SessionStatus.COMPLETED), 1), else_=0)
        ),
        sa.func.sum(
            sa.case((sa.and_(kept, inner.c.status == SessionStatus.IN_PROGRESS), 1), else_=0)
        ),
        sa.func.sum(inner.c.duration),
        sa.func.count(inner.c.duration),
        sa.func.sum(_summable_cost(final_cost, dialect)),
        sa.func.count(final_cost),
        sa.func.sum(
            sa.case(
                (
                    sa.and_(
                        kept, inner.c.status == SessionStatus.COMPLETED, sa.not_(inner.c.cost_final)
                    ),
                    1,
                ),
                else_=0,
            )
        ),
        sa.func.sum(sa.case((inner.c.deleted, 1), else_=0)),
        sa.func.sum(inner.c.member_seconds),
        sa.func.sum(inner.c.member_cost),
        sa.func.sum(inner.c.recording_cost),
        sa.func.sum(inner.c.charge),
    ]
    return sa.select(*columns).group_by(inner.c.grp)


def _detail_sums(dialect: str) -> tuple[sa.Subquery, sa.Subquery, sa.Subquery]:
    """Per session: members' seconds and cost, recordings' cost, live log charges (as the
    session_costs view sums them; money summable without overflow)."""
    m, r, c = room_session_members, room_recordings, video_charges
    members = (
        sa.select(
            m.c.room_session_id.label("sid"),
            sa.func.sum(m.c.duration).label("seconds"),
            sa.func.sum(_summable_cost(m.c.cost_in_dollars, dialect)).label("cost"),
        )
        .group_by(m.c.room_session_id)
        .subquery("m")
    )
    recordings = (
        sa.select(
            r.c.room_session_id.label("sid"),
            sa.func.sum(_summable_cost(r.c.cost_in_dollars, dialect)).label("cost"),
        )
        .group_by(r.c.room_session_id)
        .subquery("r")
    )
    charges = (
        sa.select(
            c.c.room_session_id.label("sid"),
            sa.func.sum(_summable_cost(c.c.charge, dialect)).label("cost"),
        )
        .where(c.c.discarded_at.is_(None), c.c.room_session_id.is_not(None))
        .group_by(c.c.room_session_id)
        .subquery("c")
    )
    return members, recordings, charges


def _summable_cost(cost: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """PostgreSQL's sum of doubles fails the whole query on overflow ("value out of range");
    summed as numeric it cannot overflow, and the row that does not fit is told in Python.
    SQLite's sum gives Infinity instead, which is told the same way."""
    return sa.cast(cost, sa.Numeric()) if dialect == "postgresql" else cost


def finite_cost(value: Any) -> tuple[float | None, str | None]:
    """(cost, note): the rounded sum, or None and why when it is beyond a double."""
    if value is None:
        return None, None
    cost = float(value)  # a numeric beyond a double comes back as inf, not an error
    if not math.isfinite(cost):
        return None, COST_TOO_LARGE
    return round(cost, 6), None


def cost_sum(values: Sequence[float]) -> tuple[float | None, str | None]:
    """(sum, note) of money amounts as finite_cost gives it; (None, None) for no amounts.

    math.fsum raises OverflowError as soon as a partial sum passes a double (two costs of 1e308
    are enough), even when the whole sum fits; such a sum is taken again exactly as Decimal."""
    if not values:
        return None, None
    try:
        return finite_cost(math.fsum(values))
    except OverflowError:
        return finite_cost(sum((Decimal(v) for v in values), Decimal(0)))


def _label(by: str, key: Any, room_name: str | None) -> str:
    if by in ("room", "session"):
        if key is None:
            return NO_ROOM
        return f"{room_name} ({key})" if room_name else str(key)
    if by == "status":
        return NO_STATUS if key is None else str(key)
    return str(key)


def _to_row(by: str, values: Sequence[Any]) -> ReportRow:
    key, *rest = values
    room_name = rest.pop(0) if by in ("room", "session") else None
    moment = rest.pop(0) if by == "session" else None
    sessions, completed, in_progress, duration, timed, cost, with_cost, pending, deleted = rest[:9]
    member_seconds, member_cost, recording_cost, charge = rest[9:]
    cost_usd, note = finite_cost(cost)
    sources = [finite_cost(value) for value in (member_cost, recording_cost, charge)]
    note = note or next((why for _, why in sources if why), None)
    return ReportRow(
        group=_label(by, key, room_name),
        sessions=int(sessions),
        completed=int(completed),
        in_progress=int(in_progress),
        duration_s=None if duration is None else int(duration),
        timed_sessions=int(timed),
        cost_usd=cost_usd,
        name=room_name,
        note=note,
        sessions_with_cost=int(with_cost),
        cost_pending=int(pending or 0),
        deleted=int(deleted or 0),
        participant_minutes=None if member_seconds is None else int(member_seconds) / 60,
        member_cost_usd=sources[0][0],
        recording_cost_usd=sources[1][0],
        charge_usd=sources[2][0],
        key=None if key is None or by not in ("room", "session") else str(key),
        moment=moment,
    )


def report_rows(
    engine: Engine,
    by: str = "day",
    since: datetime | None = None,
    until: datetime | None = None,
    url: str = "",
) -> list[ReportRow]:
    """Sessions grouped `by` period, room or status, in [since, until).

    Periods come in time order; rooms and statuses by sessions, most first.
    """
    check_range(since, until)
    query = build_query(by, engine.dialect.name, since, until)
    with map_errors(url or engine.url, "reading"), engine.connect() as conn:
        rows = [_to_row(by, values) for values in conn.execute(query)]
        rows = _with_peaks(conn, by, rows, since, until)
    if by in TIME_GROUPINGS:
        return sorted(rows, key=lambda row: row.group)
    if by == "session":
        return sorted(rows, key=lambda row: (row.moment is None, row.moment or _EPOCH, row.group))
    return sorted(rows, key=lambda row: (-row.sessions, row.group))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _period_of(day: date, by: str) -> str:
    """A UTC day's label in a time grouping, as the report's SQL labels it."""
    if by == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    return f"{day:%Y-%m}" if by == "month" else day.isoformat()


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _with_peaks(
    conn: sa.Connection,
    by: str,
    rows: list[ReportRow],
    since: datetime | None,
    until: datetime | None,
) -> list[ReportRow]:
    """Peaks from the views: per period the highest day of concurrency_peaks whose day
    overlaps [since, until); per room room_peaks' (over all time) with its max_members. Rows by
    session or status have none."""
    if by in TIME_GROUPINGS:
        peaks: dict[str, tuple[int, int]] = {}
        for day_value, sessions, members in conn.execute(
            sa.text("SELECT day, peak_sessions, peak_members FROM concurrency_peaks")
        ):
            day = _as_date(day_value)
            if since is not None and day < since.astimezone(UTC).date():
                continue
            if until is not None and datetime.combine(day, datetime.min.time(), UTC) >= until:
                continue
            key = _period_of(day, by)
            old = peaks.get(key, (0, 0))
            peaks[key] = (max(old[0], int(sessions or 0)), max(old[1], int(members or 0)))
        found = {row.group: peaks.get(row.group, (0, 0)) for row in rows}
        return [
            replace(row, peak_sessions=found[row.group][0], peak_members=found[row.group][1])
            for row in rows
        ]
    if by == "room":
        rooms = {
            str(room_id): (int(peak), capacity)
            for room_id, peak, capacity in conn.execute(
                sa.text(
                    "SELECT room_id, peak_members, max_members FROM room_peaks "
                    "WHERE room_id IS NOT NULL"
                )
            )
        }
        out = []
        for row in rows:
            peak, capacity = rooms.get(row.key or "", (None, None))
            out.append(replace(row, peak_members=peak, max_members=capacity))
        return out
    return rows


# --------------------------------------------------------------------------- status


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
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            **self.counts,
            "error": self.error,
        }


def month_bounds(now: datetime) -> tuple[date, date]:
    """The UTC calendar month of `now`: its first day, and the first day of the next."""
    first = now.astimezone(UTC).date().replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following


@dataclass(frozen=True)
class MonthSpend:
    """Month-to-date spend: the sum of `daily_usage.cost` over the UTC calendar month so far
    (per session the log charge where known, else final session cost plus recordings')."""

    month: str  # YYYY-MM, UTC
    spend_usd: float | None  # None: nothing known yet, or a sum beyond a double (see note)
    cost_pending: int  # sessions of the month whose cost is not final yet
    budget_usd: float | None = None
    note: str | None = None

    @property
    def used(self) -> float | None:
        """Share of the budget spent (1.0 = all of it); None without a budget or a spend."""
        if self.budget_usd is None or self.spend_usd is None:
            return None
        if self.budget_usd == 0:
            return math.inf if self.spend_usd > 0 else 0.0
        return self.spend_usd / self.budget_usd

    @property
    def over(self) -> bool:
        """Spend beyond the budget (an unknown spend is not over; an overflowing one is)."""
        if self.budget_usd is None:
            return False
        if self.note == COST_TOO_LARGE:
            return True
        return self.spend_usd is not None and self.spend_usd > self.budget_usd

    def to_dict(self) -> dict[str, Any]:
        used = self.used
        return {
            "month": self.month,
            "spend_usd": self.spend_usd,
            "cost_pending": self.cost_pending,
            "budget_usd": self.budget_usd,
            "used": None if used is None or not math.isfinite(used) else round(used, 6),
            "over": self.over,
            "note": self.note,
        }


_MONTH_USAGE = sa.text(
    "SELECT cost, cost_pending FROM daily_usage WHERE day >= :first AND day < :following"
).bindparams(sa.bindparam("first", type_=sa.Date), sa.bindparam("following", type_=sa.Date))


def read_month_spend(conn: sa.Connection, now: datetime, budget: float | None) -> MonthSpend:
    first, following = month_bounds(now)
    rows = conn.execute(_MONTH_USAGE, {"first": first, "following": following}).all()
    costs = [float(cost) for cost, _ in rows if cost is not None]
    spend, note = cost_sum(costs)
    return MonthSpend(
        month=f"{first:%Y-%m}",
        spend_usd=spend,
        cost_pending=sum(int(pending or 0) for _, pending in rows),
        budget_usd=budget,
        note=note,
    )


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
    spend: MonthSpend | None = None  # month to date, against the budget if one is given
    failing_details: int = 0  # (session, members|recordings) pairs in sync_detail_failures

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
        """A sync succeeded within `max_age`, and not later than this clock allows (CLOCK_SKEW):
        a success recorded "in the future" (the clock was set back) is not fresh."""
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
            "failing_details": self.failing_details,
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
            "now": iso(self.now),
            "month_to_date": None if self.spend is None else self.spend.to_dict(),
        }


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _finished(run: RunInfo | None) -> str | None:
    return None if run is None else iso(run.finished_at)


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


def read_status(
    engine: Engine,
    now: datetime | None = None,
    url: str = "",
    budget: float | None = None,
    spend: bool | None = None,
) -> Status:
    """Read every figure of `roomsync status` in one read transaction, refusing a database that
    is not at the newest migration. The month-to-date spend (for the UTC month of `now`) is
    read when `spend` is true, by default only with a budget: it scans the month's sessions and
    their detail, which a health probe polling `status` every few seconds need not pay for."""
    t = room_sessions
    with map_errors(url or engine.url, "reading"), engine.connect() as conn:
        revision = revision_of(conn)
        head = require_head(revision, url or engine.url)
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
            else {"id": str(newest.id), "created_at": iso(newest.created_at)},
            runs=_latest_per_command(conn),
            last_success=_latest_per_command(conn, sync_runs.c.outcome == RunOutcome.OK),
            revision=revision,
            head=head,
            failing_details=_count(conn, count.select_from(sync_detail_failures)),
        )
        if now is not None:
            status.now = now
        if spend or (spend is None and budget is not None):
            status.spend = read_month_spend(conn, status.now, budget)
    return status
