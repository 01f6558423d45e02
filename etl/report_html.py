"""The report as one self-contained HTML page: an inline SVG bar chart of minutes per group and
the table under it.

Nothing is loaded from anywhere (no scripts, fonts or images), and a Content-Security-Policy
forbids it besides. Every value from the database goes through html.escape: room names are user
data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from html import escape

from .config import TIME_GROUPINGS
from .report import TABLE_HEADINGS, table_cells, total_row
from .storage import ReportRow

CHART_WIDTH = 960
CHART_HEIGHT = 380
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 16, 100
PLOT_WIDTH = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
PLOT_HEIGHT = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
MAX_LABELS = 40  # x-axis labels shown at most; the others are thinned out
LABEL_CHARS = 22
BAR_COLOUR = "#2b6cb0"

_CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a202c;
       margin: 24px; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
p.range { color: #4a5568; margin: 0 0 16px; }
svg.chart { display: block; margin-bottom: 24px; }
svg .bar:hover { fill: #1a4971; }
svg .grid { stroke: #e2e8f0; stroke-width: 1; }
svg .axis { stroke: #4a5568; stroke-width: 1; }
svg text { font-size: 11px; fill: #4a5568; }
table { border-collapse: collapse; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e2e8f0; }
th { text-align: right; background: #f7fafc; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
td { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 600; border-top: 2px solid #4a5568; }
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _nice_step(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= value (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value))


def _axis_ticks(largest: float) -> list[float]:
    """Round tick values from 0 up to at least `largest`, at most 6 of them."""
    step = _nice_step(largest / 5)
    count = max(1, math.ceil(largest / step))
    return [step * i for i in range(count + 1)]


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _y_axis(ticks: Sequence[float]) -> list[str]:
    parts = []
    for minutes in ticks:
        y = MARGIN_TOP + PLOT_HEIGHT - PLOT_HEIGHT * minutes / ticks[-1]
        parts.append(
            f'<line class="grid" x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + PLOT_WIDTH}" '
            f'y1="{_fmt(y)}" y2="{_fmt(y)}"/>'
            f'<text x="{MARGIN_LEFT - 6}" y="{_fmt(y + 4)}" text-anchor="end">{minutes:,.0f}</text>'
        )
    return parts


def _period_index(label: str, by: str) -> int:
    """A period's place on a time axis: in days, ISO weeks (from their Monday) or months."""
    if by == "month":
        year, month = label.split("-")
        return int(year) * 12 + int(month) - 1
    ordinal = date.fromisoformat(label).toordinal()  # ordinal 1 is a Monday
    return (ordinal - 1) // 7 if by == "week" else ordinal


def _slots(rows: Sequence[ReportRow], by: str) -> tuple[list[int], int]:
    """Each bar's slot on the x axis, and how many slots there are. Periods keep their gaps (a
    day without sessions is an empty slot, not a missing one); rooms and statuses sit side by
    side."""
    if by not in TIME_GROUPINGS:
        return list(range(len(rows))), len(rows)
    indexes = [_period_index(row.group, by) for row in rows]
    return [i - indexes[0] for i in indexes], indexes[-1] - indexes[0] + 1


def _bars(rows: Sequence[ReportRow], by: str, top: float) -> list[str]:
    slots, count = _slots(rows, by)
    slot_width = PLOT_WIDTH / count
    width = max(slot_width * 0.8, 1.0)
    every = math.ceil(count / MAX_LABELS)
    baseline = MARGIN_TOP + PLOT_HEIGHT
    parts = []
    next_label = 0
    for slot, row in zip(slots, rows, strict=True):
        height = PLOT_HEIGHT * row.minutes / top
        x = MARGIN_LEFT + slot_width * slot + (slot_width - width) / 2
        group = escape(row.group)
        parts.append(
            f'<rect class="bar" fill="{BAR_COLOUR}" x="{_fmt(x)}" y="{_fmt(baseline - height)}" '
            f'width="{_fmt(width)}" height="{_fmt(height)}" '
            f'data-group="{group}" data-minutes="{row.minutes:.2f}">'
            f"<title>{group}: {row.minutes:,.1f} min</title></rect>"
        )
        if slot >= next_label:
            next_label = slot + every
            cx, cy = x + width / 2, baseline + 10
            label = escape(_short(row.name or row.group))
            parts.append(
                f'<text class="label" x="{_fmt(cx)}" y="{_fmt(cy)}" text-anchor="end" '
                f'transform="rotate(-45 {_fmt(cx)} {_fmt(cy)})">{label}</text>'
            )
    return parts


def render_chart(rows: Sequence[ReportRow], by: str) -> str:
    """An SVG bar chart of minutes per group, scaled to a round maximum."""
    if not rows:
        return '<p class="empty">No sessions in this range.</p>'
    ticks = _axis_ticks(max(row.minutes for row in rows))
    baseline = MARGIN_TOP + PLOT_HEIGHT
    axes = (
        f'<line class="axis" x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + PLOT_WIDTH}" '
        f'y1="{baseline}" y2="{baseline}"/>'
        f'<text x="14" y="{MARGIN_TOP + PLOT_HEIGHT / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {MARGIN_TOP + PLOT_HEIGHT / 2})">minutes</text>'
    )
    body = "".join([*_y_axis(ticks), *_bars(rows, by, ticks[-1]), axes])
    return (
        f'<svg class="chart" role="img" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" aria-label="minutes per {escape(by)}">'
        f"{body}</svg>"
    )


def render_rows_table(rows: Sequence[ReportRow], by: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in (by, *TABLE_HEADINGS))

    def tr(row: ReportRow, css: str = "") -> str:
        cells = "".join(f"<td>{escape(c)}</td>" for c in (row.group, *table_cells(row)))
        return f'<tr class="{css}">{cells}</tr>' if css else f"<tr>{cells}</tr>"

    body = "".join(tr(row) for row in rows) + tr(total_row(rows), "total")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _moment_text(moment: datetime) -> str:
    if moment.hour == moment.minute == moment.second == moment.microsecond == 0:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_range(since: datetime | None, until: datetime | None) -> str:
    """The range in words: since is inclusive, until exclusive, both UTC."""
    if since is not None and until is not None:
        return f"Sessions from {_moment_text(since)} until {_moment_text(until)} (exclusive)"
    if since is not None:
        return f"Sessions from {_moment_text(since)}"
    if until is not None:
        return f"Sessions before {_moment_text(until)}"
    return "All sessions"


def render_html(
    rows: Sequence[ReportRow],
    by: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> str:
    """The whole page: title, range, chart of minutes per group, table of the same rows."""
    title = f"Room sessions by {escape(by)}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{title}</h1>
<p class="range">{escape(describe_range(since, until))}; placed by start time, or creation time
where a session never started. Minutes count the API's durations.</p>
{render_chart(rows, by)}
{render_rows_table(rows, by)}
</body>
</html>
"""
