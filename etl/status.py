"""`roomsync status`: what the ledger tables say, without SQL, read-only: the `--max-age`
duration and the human rendering of the figures the storage package reads
(etl.storage.reporting.read_status).

Sessions stored and live, ids failing, sessions waiting for their final cost, the newest session,
the last run of each command, the last successful run of each, the schema revision, and the
month-to-date spend (daily_usage's cost over the UTC calendar month) against `--budget`. The same
read model feeds the metrics file (etl.metrics), so both report the same counts.

Time: ages are measured with this machine's clock. A ledger time more than CLOCK_SKEW ahead of it
(the clock jumped back, or another host's clock runs ahead) means the clocks disagree: `status`
says so, and a success recorded "in the future" is not fresh -- otherwise a clock set back by
two days would keep `--max-age` green for two days while every sync fails.
"""

from __future__ import annotations

import re
from datetime import timedelta

from .config import CLOCK_SKEW
from .storage.reporting import MonthSpend, Status, iso

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `2h`, `1d` -> timedelta; anything else is a ValueError."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 2h or 1d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


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
        f"machine's clock ({iso(status.now)}); it jumped back, or another host's runs ahead"
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
        f"failing details: {status.failing_details} (members or recordings of a session; the "
        "next sync retries them)"
        if status.failing_details
        else "failing details: 0",
    ]
    if status.spend is not None:
        lines.append(f"month spend:  {describe_spend(status.spend)}")
    sync_ok, age = status.last_successful_sync, status.sync_age()
    if sync_ok is None or age is None:
        lines.append("last sync ok: never")
    else:
        lines.append(f"last sync ok: {iso(sync_ok.finished_at)} ({_ago(age)}, run {sync_ok.id})")
    problem = clock_problem(status)
    if problem is not None:
        lines.append(f"clock:        {problem}")
    lines.append("last runs:")
    if not status.runs:
        lines.append("  none yet")
    for command, run in sorted(status.runs.items()):
        counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in run.counts.items() if n)
        finished = iso(run.finished_at) or "-"
        line = (
            f"  {command:<9} {run.outcome:<11} run {run.id}, started {iso(run.started_at)}, "
            f"finished {finished}: {counts or 'nothing'}"
        )
        if run.error:
            line += f"; error: {run.error}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def describe_spend(spend: MonthSpend) -> str:
    """Month-to-date spend in words, against the budget when there is one."""
    amount = "unknown" if spend.spend_usd is None else f"${spend.spend_usd:,.2f}"
    text = f"{amount} in {spend.month} (UTC month to date)"
    if spend.budget_usd is not None:
        used = spend.used
        share = "" if used is None or used == float("inf") else f", {used:.0%} of it"
        text += f" of a ${spend.budget_usd:,.2f} budget{share}"
        if spend.over:
            text += ": OVER BUDGET"
    if spend.cost_pending:
        text += f"; {spend.cost_pending} sessions' cost not final yet"
    if spend.note:
        text += f" ({spend.note})"
    return text


def over_budget_message(spend: MonthSpend) -> str:
    """The one line `status` logs when it exits 1 for the budget."""
    return f"over budget: {describe_spend(spend)}"
