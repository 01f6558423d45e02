"""The report as one self-contained HTML page: the period's headline figures (sessions, minutes,
participant-minutes, cost by source, sessions live now, budget used) and the time of the data
(the last successful sync); an inline SVG bar chart of minutes per group; a stacked daily cost
chart (final session costs, recordings) and a daily participant-minutes chart; and the table.

Nothing is loaded from anywhere (no scripts, fonts or images), and a Content-Security-Policy
forbids it besides. Every value from the database goes through html.escape: room names are user
data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from typing import TYPE_CHECKING

from .config import TIME_GROUPINGS
from .report import TABLE_HEADINGS, table_cells, total_row
from .storage import ReportRow
from .storage.reporting import MonthSpend, iso

if TYPE_CHECKING:
    from .storage import Store

CHART_WIDTH = 960
CHART_HEIGHT = 380
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 16, 100
PLOT_WIDTH = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
PLOT_HEIGHT = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
MAX_LABELS = 40  # x-axis labels shown at most; the others are thinned out
LABEL_CHARS = 22
BAR_COLOUR = "#2b6cb0"
SESSION_COST_COLOUR = "#38a169"  # the stacked daily cost chart: final session costs
RECORDING_COST_COLOUR = "#dd6b20"  # ... and recordings on top
PARTICIPANT_COLOUR = "#805ad5"  # the daily participant-minutes chart

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
section.headline { display: flex; flex-wrap: wrap; gap: 8px 24px; margin: 0 0 8px; }
.figure .value { display: block; font-size: 18px; font-weight: 600; }
.figure .name { color: #4a5568; font-size: 12px; }
p.asof { color: #4a5568; margin: 0 0 12px; }
h2 { font-size: 16px; margin: 16px 0 4px; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }
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


# --------------------------------------------------------------------------- daily charts

Series = tuple[str, str, str, Callable[[ReportRow], float]]  # css class, colour, name, value


def _stacked_bars(rows: Sequence[ReportRow], series: Sequence[Series], top: float) -> list[str]:
    """One stack per day, the series bottom up; each rect says its day and value."""
    slots, count = _slots(rows, "day")
    slot_width = PLOT_WIDTH / count
    width = max(slot_width * 0.8, 1.0)
    every = math.ceil(count / MAX_LABELS)
    baseline = MARGIN_TOP + PLOT_HEIGHT
    parts, next_label = [], 0
    for slot, row in zip(slots, rows, strict=True):
        x = MARGIN_LEFT + slot_width * slot + (slot_width - width) / 2
        bottom = float(baseline)
        for css, colour, name, value_of in series:
            value = value_of(row)
            height = PLOT_HEIGHT * value / top
            bottom -= height
            parts.append(
                f'<rect class="{css}" fill="{colour}" x="{_fmt(x)}" y="{_fmt(bottom)}" '
                f'width="{_fmt(width)}" height="{_fmt(height)}" '
                f'data-group="{escape(row.group)}" data-value="{value:.6f}">'
                f"<title>{escape(row.group)}: {escape(name)} {value:,.2f}</title></rect>"
            )
        if slot >= next_label:
            next_label = slot + every
            cx, cy = x + width / 2, baseline + 10
            parts.append(
                f'<text class="label" x="{_fmt(cx)}" y="{_fmt(cy)}" text-anchor="end" '
                f'transform="rotate(-45 {_fmt(cx)} {_fmt(cy)})">{escape(row.group)}</text>'
            )
    return parts


def render_daily_chart(
    rows: Sequence[ReportRow], series: Sequence[Series], unit: str, css: str
) -> str:
    """An SVG chart of one stacked bar per UTC day (gaps kept), scaled to a round maximum."""
    if not rows:
        return '<p class="empty">No sessions in this range.</p>'
    largest = max(sum(value_of(row) for *_, value_of in series) for row in rows)
    ticks = _axis_ticks(largest)
    baseline = MARGIN_TOP + PLOT_HEIGHT
    middle = MARGIN_TOP + PLOT_HEIGHT / 2
    axes = (
        f'<line class="axis" x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + PLOT_WIDTH}" '
        f'y1="{baseline}" y2="{baseline}"/>'
        f'<text x="14" y="{middle}" text-anchor="middle" '
        f'transform="rotate(-90 14 {middle})">{escape(unit)}</text>'
    )
    body = "".join([*_y_axis(ticks), *_stacked_bars(rows, series, ticks[-1]), axes])
    legend = "".join(
        f'<span style="background:{colour}"></span>{escape(name)}' for _, colour, name, _ in series
    )
    return (
        f'<p class="legend">{legend}</p>'
        f'<svg class="chart {css}" role="img" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" aria-label="{escape(unit)} per day">'
        f"{body}</svg>"
    )


COST_SERIES: tuple[Series, ...] = (
    ("cost-session", SESSION_COST_COLOUR, "sessions", lambda r: r.cost_usd or 0.0),
    ("cost-recording", RECORDING_COST_COLOUR, "recordings", lambda r: r.recording_cost_usd or 0.0),
)
PARTICIPANT_SERIES: tuple[Series, ...] = (
    (
        "participant-bar",
        PARTICIPANT_COLOUR,
        "participant-minutes",
        lambda r: r.participant_minutes or 0.0,
    ),
)


# --------------------------------------------------------------------------- headline


@dataclass(frozen=True)
class Overview:
    """What the page states besides the rows: sessions live now, the month's spend against
    the budget, and the time of the data (the last successful sync's end)."""

    live_now: int
    last_sync_at: datetime | None
    spend: MonthSpend | None = None


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _budget_text(spend: MonthSpend | None) -> str:
    if spend is None or spend.budget_usd is None:
        return "no budget set"
    used = spend.used
    share = "" if used is None or not math.isfinite(used) else f" ({used:.0%})"
    over = ", over" if spend.over else ""
    return f"{_money(spend.spend_usd)} of {_money(spend.budget_usd)}{share} in {spend.month}{over}"


def render_headline(rows: Sequence[ReportRow], overview: Overview | None) -> str:
    """The period's figures, then when the data is from."""
    total = total_row(rows)
    figures = [
        ("sessions", f"{total.sessions:,}"),
        ("minutes", "-" if total.duration_s is None else f"{total.duration_s / 60:,.1f}"),
        (
            "participant-minutes",
            "-" if total.participant_minutes is None else f"{total.participant_minutes:,.1f}",
        ),
        ("session cost", _money(total.cost_usd)),
        ("members' cost", _money(total.member_cost_usd)),
        ("recordings' cost", _money(total.recording_cost_usd)),
        ("log charges", _money(total.charge_usd)),
    ]
    if overview is not None:
        figures.append(("sessions live now", f"{overview.live_now:,}"))
        figures.append(("budget used this month", _budget_text(overview.spend)))
    cells = "".join(
        f'<div class="figure" data-name="{escape(name)}"><span class="value">{escape(value)}'
        f'</span><span class="name">{escape(name)}</span></div>'
        for name, value in figures
    )
    if overview is None:
        asof = ""
    elif overview.last_sync_at is None:
        asof = '<p class="asof">Data as of: no sync has succeeded yet.</p>'
    else:
        when = iso(overview.last_sync_at) or ""
        asof = (
            f'<p class="asof">Data as of the last successful sync: '
            f'<time datetime="{escape(when)}">{escape(_moment_text(overview.last_sync_at))}'
            f"</time></p>"
        )
    return f'<section class="headline">{cells}</section>{asof}'


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
    overview: Overview | None = None,
    daily: Sequence[ReportRow] | None = None,
) -> str:
    """The whole page: title, range, headline figures, chart of minutes per group, the daily
    cost and participant-minutes charts (from `daily`, else from `rows` by day), the table."""
    title = f"Room sessions by {escape(by)}"
    days = daily if daily is not None else (rows if by == "day" else [])
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
{render_headline(rows, overview)}
{render_chart(rows, by)}
<h2>Cost per day (USD)</h2>
{render_daily_chart(days, COST_SERIES, "dollars", "cost-chart")}
<h2>Participant-minutes per day</h2>
{render_daily_chart(days, PARTICIPANT_SERIES, "participant-minutes", "participant-chart")}
{render_rows_table(rows, by)}
</body>
</html>
"""


def html_report(
    store: Store,
    by: str,
    since: datetime | None = None,
    until: datetime | None = None,
    budget: float | None = None,
) -> str:
    """Read everything the page shows from `store` and render it: the rows by `by`, the same
    range by day for the daily charts, and the overview (live sessions, the last successful
    sync, this month's spend against `budget`)."""
    rows = store.report_rows(by, since, until)
    daily = rows if by == "day" else store.report_rows("day", since, until)
    status = store.read_status(budget=budget, spend=True)
    sync_ok = status.last_successful_sync
    overview = Overview(
        live_now=status.live,
        last_sync_at=None if sync_ok is None else sync_ok.finished_at,
        spend=status.spend,
    )
    return render_html(rows, by, since, until, overview=overview, daily=daily)
