"""Reporting queries over the stored sessions, and their text renderings (table, CSV, JSON).

A session belongs to the period of its `start_time`, or of its `created_at` where `start_time` is
null; periods are UTC days, ISO weeks (labelled by their Monday) and months. Sums cover the
values that are known: a group where no session has a duration (or a final cost) reports null,
not 0, so that "unknown" never reads as "free" or "no minutes". Only final costs count (a listed
completed session's; see etl.store.cost_is_final); `cost_pending` says how many completed
sessions still wait for theirs. Sessions deleted upstream are counted as `deleted`, never as
completed or in progress (by status they form the group `deleted`). The HTML page is in
report_html.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .config import GROUPINGS, TEXT_FORMATS, TIME_GROUPINGS
from .db import database_error
from .safe_text import json_terminal_safe, spreadsheet_safe, visible
from .schema import room_sessions

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
    "note",
)
# A sum beyond what a double holds (two costs of 1e308): reported for its row, not as Infinity.
COST_TOO_LARGE = "cost_usd does not fit a double (over 1.8e308): shown as unknown"
TABLE_HEADINGS = (
    "sessions",
    "completed",
    "in progress",
    "minutes",
    "avg min",
    "cost USD",
    "cost pending",
)
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


# --------------------------------------------------------------------------- arguments


def parse_bound(text: str) -> datetime:
    """A --since/--until value: a date (midnight UTC) or an ISO 8601 datetime (UTC if naive)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 datetime "
            "(YYYY-MM-DDTHH:MM[:SS][+HH:MM])"
        ) from None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise ValueError(f"{text!r} is outside the years 1 to 9999 once taken to UTC") from None


def check_range(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise ValueError(
            f"--since ({since:%Y-%m-%d %H:%M:%S} UTC) must be before "
            f"--until ({until:%Y-%m-%d %H:%M:%S} UTC); --until is exclusive"
        )


# --------------------------------------------------------------------------- query


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
    if by == "room":
        return t.c.room_id
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
    inner = (
        sa.select(
            _group_key(by, dialect).label("grp"),
            t.c.status,
            t.c.duration,
            t.c.cost_in_dollars,
            t.c.cost_final,
            t.c.deleted_at.is_not(None).label("deleted"),
        )
        .where(*filters)
        .subquery("s")
    )
    kept = sa.not_(inner.c.deleted)
    final_cost = sa.case((inner.c.cost_final, inner.c.cost_in_dollars))
    columns: list[Any] = [inner.c.grp]
    if by == "room":
        columns.append(_room_name(inner.c.grp))
    columns += [
        sa.func.count(),
        sa.func.sum(sa.case((sa.and_(kept, inner.c.status == "completed"), 1), else_=0)),
        sa.func.sum(sa.case((sa.and_(kept, inner.c.status == "in-progress"), 1), else_=0)),
        sa.func.sum(inner.c.duration),
        sa.func.count(inner.c.duration),
        sa.func.sum(_summable_cost(final_cost, dialect)),
        sa.func.count(final_cost),
        sa.func.sum(
            sa.case(
                (
                    sa.and_(kept, inner.c.status == "completed", sa.not_(inner.c.cost_final)),
                    1,
                ),
                else_=0,
            )
        ),
        sa.func.sum(sa.case((inner.c.deleted, 1), else_=0)),
    ]
    return sa.select(*columns).group_by(inner.c.grp)


def _summable_cost(cost: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """PostgreSQL's sum of doubles fails the whole query on overflow ("value out of range");
    summed as numeric it cannot overflow, and the row that does not fit is told in Python.
    SQLite's sum gives Infinity instead, which is told the same way."""
    return sa.cast(cost, sa.Numeric()) if dialect == "postgresql" else cost


def _finite_cost(value: Any) -> tuple[float | None, str | None]:
    """(cost, note): the rounded sum, or None and why when it is beyond a double."""
    if value is None:
        return None, None
    cost = float(value)  # a numeric beyond a double comes back as inf, not an error
    if not math.isfinite(cost):
        return None, COST_TOO_LARGE
    return round(cost, 6), None


def _label(by: str, key: Any, room_name: str | None) -> str:
    if by == "room":
        if key is None:
            return NO_ROOM
        return f"{room_name} ({key})" if room_name else str(key)
    if by == "status":
        return NO_STATUS if key is None else str(key)
    return str(key)


def _to_row(by: str, values: Sequence[Any]) -> ReportRow:
    key, *rest = values
    room_name = rest.pop(0) if by == "room" else None
    sessions, completed, in_progress, duration, timed, cost, with_cost, pending, deleted = rest
    cost_usd, note = _finite_cost(cost)
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
    )


def report_rows(
    engine: Engine, by: str = "day", since: datetime | None = None, until: datetime | None = None
) -> list[ReportRow]:
    """Sessions grouped `by` period, room or status, in [since, until).

    Periods come in time order; rooms and statuses by sessions, most first.
    """
    check_range(since, until)
    query = build_query(by, engine.dialect.name, since, until)
    try:
        with engine.connect() as conn:
            rows = [_to_row(by, values) for values in conn.execute(query)]
    except SQLAlchemyError as exc:
        raise database_error(exc, engine.url, "reading") from None
    if by in TIME_GROUPINGS:
        return sorted(rows, key=lambda row: row.group)
    return sorted(rows, key=lambda row: (-row.sessions, row.group))


def total_row(rows: Sequence[ReportRow]) -> ReportRow:
    """The sum of every group, with unknown sums staying unknown only if all are unknown."""
    durations = [r.duration_s for r in rows if r.duration_s is not None]
    costs = [r.cost_usd for r in rows if r.cost_usd is not None]
    cost_usd, note = _finite_cost(math.fsum(costs)) if costs else (None, None)
    if any(r.note == COST_TOO_LARGE for r in rows):  # a total without that row would mislead
        cost_usd, note = None, COST_TOO_LARGE
    return ReportRow(
        group="total",
        sessions=sum(r.sessions for r in rows),
        completed=sum(r.completed for r in rows),
        in_progress=sum(r.in_progress for r in rows),
        duration_s=sum(durations) if durations else None,
        timed_sessions=sum(r.timed_sessions for r in rows),
        cost_usd=cost_usd,
        note=note,
        sessions_with_cost=sum(r.sessions_with_cost for r in rows),
        cost_pending=sum(r.cost_pending for r in rows),
        deleted=sum(r.deleted for r in rows),
    )


# --------------------------------------------------------------------------- rendering


def table_cells(row: ReportRow) -> tuple[str, ...]:
    """The human-readable numbers of a row, as the terminal table and the HTML page show them."""
    avg = row.avg_duration_s
    return (
        f"{row.sessions:,}",
        f"{row.completed:,}",
        f"{row.in_progress:,}",
        "-" if row.duration_s is None else f"{row.duration_s / 60:,.1f}",
        "-" if avg is None else f"{avg / 60:,.1f}",
        "-" if row.cost_usd is None else f"{row.cost_usd:,.2f}",
        f"{row.cost_pending:,}",
    )


def display_width(text: str) -> int:
    """Terminal columns `text` takes: wide characters (CJK, most emoji) take two, combining
    marks none. Room names are user data, so this matters for alignment."""
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in text
    )


def _pad(text: str, width: int, left: bool) -> str:
    fill = " " * (width - display_width(text))
    return text + fill if left else fill + text


def render_table(rows: Sequence[ReportRow], by: str) -> str:
    """Columns aligned for a terminal: group left, numbers right, a total line at the bottom."""
    body = [(visible(row.group), *table_cells(row)) for row in rows]
    total = ("total", *table_cells(total_row(rows)))
    header = (by, *TABLE_HEADINGS)
    widths = [
        max(display_width(line[i]) for line in (header, *body, total)) for i in range(len(header))
    ]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(_pad(cell, width, i == 0) for i, (cell, width) in pairs).rstrip()

    rule = "  ".join("-" * width for width in widths)
    notes = sorted({row.note for row in (*rows, total_row(rows)) if row.note})
    return (
        "\n".join([line(header), rule, *(line(cells) for cells in body), rule, line(total)])
        + "\n"
        + "".join(f"note: {note}\n" for note in notes)
    )


def render_csv(rows: Sequence[ReportRow]) -> str:
    """A header row, then one row per group; unknown values are empty fields. Text cells are
    neutralised for spreadsheets (no formulas, no control characters); numbers are as they are."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(JSON_KEYS)
    for row in rows:
        writer.writerow(_csv_cell(value) for value in row.to_dict().values())
    return buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    return spreadsheet_safe(value) if isinstance(value, str) else value


def render_json(rows: Sequence[ReportRow]) -> str:
    # allow_nan=False: Infinity or NaN would make the output invalid JSON; _finite_cost keeps
    # them out, and this makes sure.
    objects = [row.to_dict() for row in rows]
    text = json.dumps(objects, indent=2, ensure_ascii=False, allow_nan=False)
    return json_terminal_safe(text) + "\n"


def render_text(rows: Sequence[ReportRow], fmt: str, by: str) -> str:
    if fmt == "table":
        return render_table(rows, by)
    if fmt == "csv":
        return render_csv(rows)
    if fmt == "json":
        return render_json(rows)
    raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(TEXT_FORMATS)}")
