"""`roomsync report`: its arguments, and the text renderings (table, CSV, JSON) of the rows the
storage package reads (etl.storage.reporting, which holds the query).

A session belongs to the period of its `start_time`, or of its `created_at` where `start_time` is
null; periods are UTC days, ISO weeks (labelled by their Monday) and months. Sums cover the
values that are known: a group where no session has a duration (or a final cost) reports null,
not 0, so that "unknown" never reads as "free" or "no minutes". Only final costs count (a listed
completed session's; see etl.storage.sessions.cost_is_final); `cost_pending` says how many
completed sessions still wait for theirs. Sessions deleted upstream are counted as `deleted`,
never as completed or in progress (by status they form the group `deleted`). Each row also
carries participant-minutes and the cost by source (members, recordings, video log charges, as
the session_costs view sums them) and the peaks (concurrency_peaks per period, room_peaks per
room). The HTML page is in report_html.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .config import TEXT_FORMATS
from .errors import TimestampRangeError
from .records import parse_timestamp
from .safe_text import json_terminal_safe, spreadsheet_safe, visible
from .storage.reporting import (
    COST_TOO_LARGE,
    JSON_KEYS,
    ReportRow,
    cost_sum,
)
from .storage.reporting import check_range as check_range  # the query's own guard, for the CLI

TABLE_HEADINGS = (
    "sessions",
    "completed",
    "in progress",
    "minutes",
    "avg min",
    "cost USD",
    "cost pending",
    "part. min",
    "members USD",
    "rec. USD",
    "charges USD",
    "peak sessions",
    "peak members",
)


# --------------------------------------------------------------------------- arguments


def parse_bound(text: str) -> datetime:
    """A --since/--until value: a date (midnight UTC) or a datetime (UTC if naive), read as API
    timestamps are (etl.records.parse_timestamp): every RFC 3339 form, lower-case `t`/`z` and
    a leap second included, besides what `datetime.fromisoformat` reads."""
    try:
        return parse_timestamp(text.strip())
    except TimestampRangeError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise ValueError(f"{text!r} is outside the years 1 to 9999 once taken to UTC") from None
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 datetime "
            "(YYYY-MM-DDTHH:MM[:SS][+HH:MM])"
        ) from None


def _total_cost(values: Sequence[float | None], overflowed: bool) -> float | None:
    """A money total: unknown only if every value is, and unknown when a row overflowed (a
    total without that row would mislead)."""
    known = [v for v in values if v is not None]
    if overflowed or not known:
        return None
    return cost_sum(known)[0]


def _max(values: Sequence[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def total_row(rows: Sequence[ReportRow]) -> ReportRow:
    """The sum of every group, with unknown sums staying unknown only if all are unknown;
    peaks are the highest of the groups'."""
    durations = [r.duration_s for r in rows if r.duration_s is not None]
    costs = [r.cost_usd for r in rows if r.cost_usd is not None]
    cost_usd, note = cost_sum(costs)
    overflowed = any(r.note == COST_TOO_LARGE for r in rows)
    if overflowed:  # a total without that row would mislead
        cost_usd, note = None, COST_TOO_LARGE
    participant = [r.participant_minutes for r in rows if r.participant_minutes is not None]
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
        participant_minutes=math.fsum(participant) if participant else None,
        member_cost_usd=_total_cost([r.member_cost_usd for r in rows], overflowed),
        recording_cost_usd=_total_cost([r.recording_cost_usd for r in rows], overflowed),
        charge_usd=_total_cost([r.charge_usd for r in rows], overflowed),
        peak_sessions=_max([r.peak_sessions for r in rows]),
        peak_members=_max([r.peak_members for r in rows]),
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
        "-" if row.participant_minutes is None else f"{row.participant_minutes:,.1f}",
        _dollars(row.member_cost_usd),
        _dollars(row.recording_cost_usd),
        _dollars(row.charge_usd),
        "-" if row.peak_sessions is None else f"{row.peak_sessions:,}",
        _peak_members(row),
    )


def _dollars(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _peak_members(row: ReportRow) -> str:
    """Most members at once; by room, against the room's max_members (`12/20`)."""
    if row.peak_members is None:
        return "-"
    if row.max_members is not None:
        return f"{row.peak_members:,}/{row.max_members:,}"
    return f"{row.peak_members:,}"


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
    # allow_nan=False: Infinity or NaN would make the output invalid JSON; finite_cost keeps
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
