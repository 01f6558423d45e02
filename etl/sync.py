"""`roomsync sync`: keep the table current with no id list, from cron.

1. Refresh: re-fetch by id every stored session that is not final yet (in-progress, or status
   null) and every id in the failure ledger, so end times, durations and statuses settle.
2. Discover: walk the list endpoint (largest pages, `links.next` as given). The list has no date
   filter and no documented order, so the first run (or `--full`) walks every page. Later runs
   stop early once they are past the previous sync's watermark minus an overlap window, but
   only while every item seen so far really came newest first; otherwise they walk it all.
   The walk always reaches back far enough to list again every session stored final from a
   by-id body since it was last listed (the relist queue, filled by any command): its final
   cost is only in the list.

Only one sync runs at a time (etl.lock); another that finds the lock taken does nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from . import ledger
from .config import CLOCK_SKEW, DEFAULT_OVERLAP, MAX_PAGE_SIZE, Settings
from .errors import ApiError, PayloadError
from .lock import run_lock
from .pipeline import Run, Summary, execute
from .records import SessionRow, canonical_uuid, parse_session
from .signalwire import SignalWireClient

log = logging.getLogger(__name__)


@dataclass
class Listing:
    """What the discovery pass saw: order, the newest item, where it stopped."""

    stop_before: datetime | None
    previous_watermark: datetime | None
    not_after: datetime | None = None  # this machine's clock plus the skew allowed
    listed: int = 0
    newest: datetime | None = None
    last: datetime | None = None
    newest_first: bool = True
    completed: bool = False
    stopped_early: bool = False
    _seen: set[int] = field(default_factory=set, repr=False)

    def reach_back_to(self, created_at: datetime) -> None:
        """Do not stop early before listing sessions created at `created_at` again."""
        if self.stop_before is not None and created_at < self.stop_before:
            self.stop_before = created_at

    def first_time(self, session_id: str) -> bool:
        """False for an item already listed in this walk (pages can shift while it runs)."""
        key = uuid.UUID(session_id).int
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def observe(self, created_at: datetime) -> None:
        """Note one listed session's created_at, bounded by the clock: a session dated in the
        future (a broken upstream clock) must not move the watermark past what the list can
        still deliver."""
        if self.not_after is not None:
            created_at = min(created_at, self.not_after)
        if self.last is not None and created_at > self.last:
            self.newest_first = False
        self.last = created_at
        if self.newest is None or created_at > self.newest:
            self.newest = created_at

    def past_watermark(self) -> bool:
        """True once everything still to come is older than what the last sync already saw."""
        return (
            self.stop_before is not None
            and self.newest_first
            and self.last is not None
            and self.last < self.stop_before
        )

    def watermark(self) -> datetime | None:
        """The watermark to record: only a listing that reached its end (or a safe early stop)
        may move it; an empty one keeps the previous one."""
        if not self.completed:
            return None
        return self.newest or self.previous_watermark


@dataclass
class SyncResult:
    skipped: bool
    summary: Summary | None = None
    listing: Listing | None = None
    refreshed: int = 0

    @property
    def exit_code(self) -> int:
        return 0 if self.summary is None else self.summary.exit_code

    def to_dict(self) -> dict[str, Any]:
        if self.summary is None or self.listing is None:
            return {"skipped": True, "reason": "another sync is running"}
        return {
            "skipped": False,
            **self.summary.to_dict(),
            "listed": self.listing.listed,
            "refreshed": self.refreshed,
            "full_pass": self.listing.completed and not self.listing.stopped_early,
        }


def _parse_list_item(run: Run, listing: Listing, item: Any) -> SessionRow | None:
    raw_id = item.get("id") if isinstance(item, dict) else None
    try:
        session_id = canonical_uuid(raw_id)
    except (ValueError, TypeError):
        run.reject_item(None, f"no valid id: {raw_id!r}")
        return None
    if not listing.first_time(session_id):
        return None
    listing.listed += 1
    try:
        return parse_session(item, session_id)
    except PayloadError as exc:
        run.reject_item(session_id, str(exc))  # rows that parse are counted by Run.add_rows
        return None


async def _discover(run: Run, client: SignalWireClient, listing: Listing, page_size: int) -> None:
    try:
        async for page in client.list_room_sessions(page_size=page_size):
            rows = [row for row in (_parse_list_item(run, listing, item) for item in page) if row]
            for row in rows:
                listing.observe(row["created_at"])
            await run.add_rows(rows)
            if run.stop.is_set():
                return
            if listing.past_watermark():
                listing.stopped_early = True
                break
    except ApiError as exc:
        run.summary.errors.append(f"listing sessions failed: {exc}")
        log.error("listing sessions failed: %s", exc)
        return
    listing.completed = True


async def _refresh(run: Run, client: SignalWireClient) -> int:
    """Re-fetch failed and unfinished sessions by id; return how many ids that was."""
    unfinished = ledger.unfinished_session_ids(run.engine)
    ids = list(dict.fromkeys([*run.failed_at_start, *unfinished]))
    await run.fetch_ids(client, ids)
    return len(ids)


def run_sync(
    settings: Settings,
    engine: Engine,
    *,
    full: bool = False,
    overlap: timedelta = DEFAULT_OVERLAP,
    page_size: int = MAX_PAGE_SIZE,
    handle_signals: bool = False,
    now: datetime | None = None,
) -> SyncResult:
    """One sync run, or a skipped one when another holds the lock."""
    with run_lock(engine) as taken:
        if not taken:
            return SyncResult(skipped=True)
        ledger.mark_dead_runs(engine, all_of_command="sync")
        not_after = (now or datetime.now(UTC)) + CLOCK_SKEW
        previous = ledger.last_watermark(engine)
        if previous is not None:
            previous = min(previous, not_after)  # one recorded by a version without the bound
        stop_before = None if full or previous is None else previous - overlap
        listing = Listing(stop_before=stop_before, previous_watermark=previous, not_after=not_after)
        result = SyncResult(skipped=False, listing=listing)

        async def body(run: Run, client: SignalWireClient) -> None:
            result.refreshed = await _refresh(run, client)
            if run.stop.is_set():
                return
            oldest = ledger.oldest_to_relist(engine)
            if oldest is not None:
                listing.reach_back_to(oldest)
            await _discover(run, client, listing, page_size)

        def finish(_run: Run) -> dict[str, Any]:
            return {
                "watermark": listing.watermark(),
                "full_pass": listing.completed and not listing.stopped_early,
            }

        result.summary = execute(
            "sync", settings, engine, body, handle_signals=handle_signals, finish=finish
        )
        return result
