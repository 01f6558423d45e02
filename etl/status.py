"""`roomsync status`: what the ledger tables say, without SQL, read-only: the `--max-age`
duration and the human rendering of the figures the storage package reads
(etl.storage.reporting.read_status).

Sessions stored and live, ids failing, sessions waiting for their final cost, the newest session,
the last run of each command, the last successful run of each, the schema revision. The same
read model feeds the metrics file (etl.metrics), so both report the same counts.
"""

from __future__ import annotations

import re
from datetime import timedelta

from .storage.reporting import Status, iso

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `2h`, `1d` -> timedelta; anything else is a ValueError."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 2h or 1d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m ago"
    return f"{seconds // 86400}d ago"


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
    sync_ok, age = status.last_successful_sync, status.sync_age()
    if sync_ok is None or age is None:
        lines.append("last sync ok: never")
    else:
        lines.append(f"last sync ok: {iso(sync_ok.finished_at)} ({_ago(age)}, run {sync_ok.id})")
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
