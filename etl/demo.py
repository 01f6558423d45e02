"""`roomsync demo`: the whole job end to end against the local stand-in API and SQLite.

The stand-in serves a generated account (sessions with their members, recordings, rooms and
video log entries) on a free loopback port, with a few scripted faults so that the retries
show; a couple of unknown ids show `not_found`. After the backfill by id (with the members and
recordings of the completed sessions), one `sync` picks up what only the list carries (the
cost), re-fetches the live sessions, walks the rooms and the video logs. The summary closes
with participant-minutes and the cost as each source states it.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from .config import Settings, mask_url
from .fake_api import FakeSignalWire, generate_account
from .pipeline import Summary, run_ids
from .storage import Store, current_revision, upgrade
from .sync import run_sync

DEMO_PROJECT = "demo-project"
DEMO_TOKEN = "demo-token"


def run_demo(n_sessions: int, database_url: str) -> dict[str, Any]:
    """Serve `n_sessions` fake sessions, migrate `database_url`, backfill, sync, summarise."""
    account = generate_account(n_sessions, seed=7)
    ids = [s["id"] for s in account.sessions]
    unknown = [str(uuid.UUID(int=n)) for n in (1, 2)]
    with FakeSignalWire(project_id=DEMO_PROJECT, token=DEMO_TOKEN, account=account) as api:
        api.script(ids[0], "503", "429")
        api.script(ids[-1], "reset")
        upgrade(database_url)
        settings = Settings(
            base_url=api.base_url,
            project_id=DEMO_PROJECT,
            api_token=DEMO_TOKEN,
            database_url=database_url,
            backoff=0.2,
        )
        with Store.open(database_url, at_head=False) as store:  # just upgraded
            backfill = run_ids([*ids, *unknown], settings, store)
            synced = run_sync(settings, store)
            totals = store.report_rows("status")
            bill = store.bill_totals()
    sync_result = synced.to_dict()
    by_status = ", ".join(f"{t.group}: {t.sessions} ({t.minutes:,.0f} min)" for t in totals)
    lines = [
        f"stand-in API: {api.base_url} serving {n_sessions} sessions "
        "(with a 503, a 429 and a reset scripted)",
        f"database: {mask_url(database_url)} at revision {current_revision(database_url)}",
        _line(f"backfill of {backfill.requested} ids ({len(unknown)} unknown)", backfill),
        _line(
            f"sync: listed {sync_result.get('listed', 0)} sessions, re-fetched "
            f"{sync_result.get('refreshed', 0)} live ones",
            synced.summary,
        ),
        f"stored sessions by status: {by_status}",
        f"attendance: {bill.members} member intervals, {bill.participant_minutes:,.1f} "
        f"participant-minutes; {bill.recordings} recordings; {bill.rooms} rooms",
        "cost by source: "
        + ", ".join(
            f"{name} {_dollars(value)}"
            for name, value in (
                ("sessions (final list cost)", bill.session_cost),
                ("members", bill.member_cost),
                ("recordings", bill.recording_cost),
                (f"video logs ({bill.charges} entries)", bill.charge),
            )
        ),
        "run it again: every id comes back unchanged",
        # masked: the demo may be pointed at a PostgreSQL URL with a password in it
        f"see the numbers: roomsync report --database-url {mask_url(database_url)} --by status",
    ]
    return {
        "backfill": backfill.to_dict(),
        "sync": sync_result,
        "bill": dataclasses.asdict(bill),
        "lines": lines,
    }


def _dollars(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}"


def _line(what: str, summary: Summary | None) -> str:
    if summary is None:
        return f"{what}: skipped (another sync holds the lock)"
    counted = ", ".join(f"{n} {outcome.replace('_', ' ')}" for outcome, n in summary.counts.items())
    return f"{what} in {summary.elapsed_s:.2f}s: {counted}"
