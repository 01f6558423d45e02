"""`roomsync demo`: the whole job end to end against the local stand-in API and SQLite.

The stand-in serves a generated account (sessions with their members, recordings, rooms and
video log entries) on a free loopback port, with a few scripted faults so that the retries
show; a couple of unknown ids show `not_found`. After the backfill by id (with the members and
recordings of the completed sessions), one `sync` picks up what only the list carries (the
cost), re-fetches the live sessions, walks the rooms and the video logs. The summary closes
with participant-minutes and the cost as each source states it.

`roomsync demo --serve` then keeps the stand-in up (`serving`, `StopSignals`) so that every
command can be tried by hand against it, with the settings `demo_environment` gives.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .config import Settings, mask_url
from .fake_api import FakeSignalWire, generate_account
from .pipeline import Summary, run_ids
from .storage import Store, current_revision, shareable_url, upgrade
from .sync import SyncResult, run_sync

DEMO_PROJECT = "demo-project"
DEMO_TOKEN = "demo-token"


@contextmanager
def serving(n_sessions: int, port: int = 0) -> Iterator[FakeSignalWire]:
    """The stand-in API with the demo's account (sessions, members, recordings, rooms,
    video logs) on 127.0.0.1:`port` (0: a free one); stopped
    (its port released, open connections hung up) when the block ends."""
    account = generate_account(n_sessions, seed=7)
    with FakeSignalWire(
        project_id=DEMO_PROJECT, token=DEMO_TOKEN, account=account, port=port
    ) as api:
        yield api


def demo_environment(api: FakeSignalWire, database_url: str) -> dict[str, str]:
    """The settings that point the other commands at the stand-in and the demo's database (as
    `shareable_url` shows it: usable from any directory, a password masked)."""
    return {
        "SIGNALWIRE_SPACE": api.base_url,
        "SIGNALWIRE_PROJECT_ID": DEMO_PROJECT,
        "SIGNALWIRE_API_TOKEN": DEMO_TOKEN,
        "DATABASE_URL": shareable_url(database_url),
    }


class StopSignals:
    """SIGINT and SIGTERM caught from the moment it is entered (so that one sent as soon as the
    settings are printed is not missed) until it is left (the earlier handlers are put back);
    `wait()` blocks until one arrives and returns its name."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._received: list[str] = []
        self._previous: dict[signal.Signals, Any] = {}

    def _handler(self, signum: int, _frame: Any) -> None:
        self._received.append(signal.Signals(signum).name)
        self._stop.set()

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)

    def wait(self) -> str:
        while not self._stop.wait(0.5):
            pass
        return self._received[0]


def run_demo(
    n_sessions: int,
    database_url: str,
    api: FakeSignalWire | None = None,
    command: str = "roomsync",
) -> tuple[Summary, SyncResult, list[str]]:
    """Serve `n_sessions` fake sessions, migrate `database_url`, backfill, sync; return both
    runs and the closing lines, which spell roomsync as `command` (see `how_to_run`). With
    `api` (from `serving`), use that stand-in and leave it running."""
    if api is None:
        with serving(n_sessions) as own:
            return run_demo(n_sessions, database_url, own, command)
    ids = list(api.sessions)
    unknown = [str(uuid.UUID(int=n)) for n in (1, 2)]
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
        f"see the numbers: {command} report --database-url {mask_url(database_url)} --by status",
    ]
    return backfill, synced, lines


def how_to_run(argv0: str, on_path: str | None, python: str, cwd: str | None = None) -> str:
    """How to spell roomsync so that it works where the user stands.

    `argv0` is how this process was started (sys.argv[0]: the script's path, or etl's
    __main__.py under `python -m etl`), `on_path` what `roomsync` finds on PATH (or None).
    `roomsync` when that is this very script; else its path, relative to `cwd` when below it
    (`.venv/bin/roomsync` in the README's flow, where the venv is not activated)."""
    here = Path(cwd or os.getcwd())
    if Path(argv0).name == "__main__.py":
        return f"{_shown(python, here)} -m etl"
    if on_path is not None and Path(on_path).resolve() == Path(argv0).resolve():
        return "roomsync"
    return _shown(argv0, here)


def _shown(path: str, here: Path) -> str:
    absolute = Path(os.path.abspath(path))
    try:
        relative = str(absolute.relative_to(here))
    except ValueError:
        return str(absolute)
    return relative if "/" in relative else f"./{relative}"  # a bare name would search PATH


def _dollars(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}"


def _line(what: str, summary: Summary | None) -> str:
    if summary is None:
        return f"{what}: skipped (another sync holds the lock)"
    counted = ", ".join(f"{n} {outcome.replace('_', ' ')}" for outcome, n in summary.counts.items())
    return f"{what} in {summary.elapsed_s:.2f}s: {counted}"
