"""Reporting queries over the stored sessions, and their text renderings (table, CSV, JSON).

A session belongs to the period of its `start_time`, or of its `created_at` where `start_time` is
null; periods are UTC days, ISO weeks (labelled by their Monday) and months. Sums cover the
values that are known: a group where no session has a duration (or a cost) reports null, not 0,
so that "unknown" never reads as "free" or "no minutes". The HTML page is in report_html.py.
"""

from __future__ import annotations

import csv
import io
import json
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
)
TABLE_HEADINGS = ("sessions", "completed", "in progress", "minutes", "avg min", "cost USD")


@dataclass(frozen=True)
class ReportRow:
    """One group of sessions: a period, a room or a status."""

    group: str
    sessions: int
    completed: int
    in_progress: int
    duration_s: int | None  # sum of known API durations; None when none is known
    timed_sessions: int  # sessions with a known duration
    cost_usd: float | None  # sum of known costs; None when none is known
    name: str | None = None  # by room: the room's name alone, for chart labels

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
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
        return t.c.status
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
            _group_key(by, dialect).label("grp"), t.c.status, t.c.duration, t.c.cost_in_dollars
        )
        .where(*filters)
        .subquery("s")
    )
    columns: list[Any] = [inner.c.grp]
    if by == "room":
        columns.append(_room_name(inner.c.grp))
    columns += [
        sa.func.count(),
        sa.func.sum(sa.case((inner.c.status == "completed", 1), else_=0)),
        sa.func.sum(sa.case((inner.c.status == "in-progress", 1), else_=0)),
        sa.func.sum(inner.c.duration),
        sa.func.count(inner.c.duration),
        sa.func.sum(inner.c.cost_in_dollars),
    ]
    return sa.select(*columns).group_by(inner.c.grp)


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
    sessions, completed, in_progress, duration, timed, cost = rest
    return ReportRow(
        group=_label(by, key, room_name),
        sessions=int(sessions),
        completed=int(completed),
        in_progress=int(in_progress),
        duration_s=None if duration is None else int(duration),
        timed_sessions=int(timed),
        cost_usd=None if cost is None else round(float(cost), 6),
        name=room_name,
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
    return ReportRow(
        group="total",
        sessions=sum(r.sessions for r in rows),
        completed=sum(r.completed for r in rows),
        in_progress=sum(r.in_progress for r in rows),
        duration_s=sum(durations) if durations else None,
        timed_sessions=sum(r.timed_sessions for r in rows),
        cost_usd=round(sum(costs), 6) if costs else None,
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
    body = [(row.group, *table_cells(row)) for row in rows]
    total = ("total", *table_cells(total_row(rows)))
    header = (by, *TABLE_HEADINGS)
    widths = [
        max(display_width(line[i]) for line in (header, *body, total)) for i in range(len(header))
    ]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(_pad(cell, width, i == 0) for i, (cell, width) in pairs).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return (
        "\n".join([line(header), rule, *(line(cells) for cells in body), rule, line(total)]) + "\n"
    )


def render_csv(rows: Sequence[ReportRow]) -> str:
    """A header row, then one row per group; unknown values are empty fields."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(JSON_KEYS)
    for row in rows:
        writer.writerow("" if value is None else value for value in row.to_dict().values())
    return buffer.getvalue()


def render_json(rows: Sequence[ReportRow]) -> str:
    return json.dumps([row.to_dict() for row in rows], indent=2, ensure_ascii=False) + "\n"


def render_text(rows: Sequence[ReportRow], fmt: str, by: str) -> str:
    if fmt == "table":
        return render_table(rows, by)
    if fmt == "csv":
        return render_csv(rows)
    if fmt == "json":
        return render_json(rows)
    raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(TEXT_FORMATS)}")
