"""Fetching the rest of the bill within a run: members and recordings of sessions, rooms, and
the video log entries that itemise the charges. Every request goes through the run's client
(retries, Retry-After, bounded time, body size and pages, loopback rules, one line per retry).

**Details.** Which sessions' members and recordings to ask for is the storage's rule
(`etl.storage.bill.detail_due`): a session stored completed, once, and again only while what
was fetched is not final (`is_final`: a member without `leave_time`, a recording not
`completed`) and the session ended less than `DETAIL_SETTLE` ago. Each (session, detail) is
one walk of its pages; every item must parse, or the whole detail fails with the item's reason
(one bad item costs that session's detail only, never another session's, never the session
row). A failure (a 500 after the retries, a poison body, an endless walk, a 404) goes to the
detail failure ledger with the reason; the next run and `--retry-failed` ask again, and a
success takes it out. Details are written in batches, one transaction each, with the ledger.

**Rooms.** One walk of /api/video/rooms per sync; every room upserted (newest `updated_at`
wins). Only after a complete walk are the stored rooms it did not return marked `deleted_at`.

**Charges.** /api/video/logs with `include_deleted=true` (a deleted entry comes back as
`{id, discarded_at, created_at}`) and `created_after` = the previous complete walk's newest
`created_at` less the sync's `--overlap`, moved back to just before the oldest stored entry
whose charge can still change (not completed, not deleted, created within `CHARGES_REACH`):
the API dates an entry when its session is created, and its charge changes when the session
ends, so a window over new entries alone would miss it. The cursor moves only after a complete
walk in which every entry parsed; otherwise the next walk starts from the same place. The first
walk, and `sync --full`, read every entry. Deleting an entry older than the window is seen
only by `--full` (the API has no filter on `discarded_at`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .bill_records import parse_member, parse_recording, parse_room, parse_video_log
from .config import CHARGES_REACH, CLOCK_SKEW, DETAIL_SETTLE
from .errors import ApiError, PayloadError
from .outcomes import Outcome
from .records import canonical_uuid
from .safe_text import visible
from .signalwire import SignalWireClient
from .storage import Store
from .storage.bill import CHARGES_CURSOR, DETAILS, MEMBERS, Detail

log = logging.getLogger(__name__)

MAX_SHOWN_FAILURES = 100
DUE_PAGE = 5000  # sessions read per query of `fetch_due` (bounds what a first sync holds)
PARTS = ("members", "recordings", "rooms", "charges")


def is_final(detail: str, rows: Sequence[Mapping[str, Any]]) -> bool:
    """Whether nothing in a completed session's fetched detail can change any more."""
    if detail == MEMBERS:
        return all(row["leave_time"] is not None for row in rows)
    return all(row["status"] == "completed" for row in rows)


@dataclass
class BillSummary:
    """What a run did with the rest of the bill: items per part and outcome, the details asked
    for and failed (the first ones with why; the ledger holds them all), run-level errors."""

    parts: frozenset[str] = frozenset()
    items: dict[str, Counter[str]] = field(
        default_factory=lambda: {part: Counter() for part in PARTS}
    )
    details_asked: int = 0
    detail_failed: int = 0
    detail_failures: dict[str, str] = field(default_factory=dict)
    rooms_gone: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, session_id: str, detail: str, reason: str) -> None:
        self.detail_failed += 1
        if len(self.detail_failures) < MAX_SHOWN_FAILURES:
            self.detail_failures[f"{session_id} {detail}"] = reason

    @property
    def failed(self) -> bool:
        return bool(self.detail_failed or self.errors)

    def describe(self) -> str:
        """One line for the log: details asked and failed, items per part."""
        parts = "; ".join(
            f"{part} " + ", ".join(f"{n} {o}" for o, n in sorted(self.items[part].items()))
            for part in PARTS
            if part in self.parts and self.items[part]
        )
        gone = f"; {self.rooms_gone} rooms gone" if self.rooms_gone else ""
        return (
            f"bill: {self.details_asked} details asked, {self.detail_failed} failed"
            + (f"; {parts}" if parts else "")
            + gone
        )

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "with": sorted(self.parts),
            "details_asked": self.details_asked,
            "detail_failed": self.detail_failed,
            "detail_failures": dict(sorted(self.detail_failures.items())),
        }
        for part in PARTS:
            if part in self.parts:
                result[part] = {str(o): self.items[part].get(str(o), 0) for o in _ITEM_OUTCOMES}
        if "rooms" in self.parts:
            result["rooms_gone"] = self.rooms_gone
        if self.errors:
            result["errors"] = list(self.errors)
        return result


_ITEM_OUTCOMES = (Outcome.INSERTED, Outcome.UPDATED, Outcome.UNCHANGED, Outcome.FAILED)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class BillFetch:
    """The bill's side of one run: the client and store it shares with the sessions' side."""

    def __init__(
        self,
        store: Store,
        client: SignalWireClient,
        *,
        parts: Collection[str],
        run_id: int | None,
        concurrency: int,
        batch_size: int,
        should_stop: Callable[[], bool] = lambda: False,
        dry_run: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_error: Callable[[str], None] | None = None,
        before_write: Callable[[], None] | None = None,
    ) -> None:
        """`on_error` takes the failures of a walk (rooms, logs) as the run's own errors
        (logged, kept in the ledger); without it they are logged and kept in the summary."""
        self.store = store
        self.on_error = on_error
        self.before_write = before_write  # raises to stop before a write (a sync's lost lock)
        self.client = client
        self.run_id = run_id
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.should_stop = should_stop
        self.dry_run = dry_run
        self.clock = clock
        self.summary = BillSummary(parts=frozenset(parts))
        self._details: list[Detail] = []
        self._failures: dict[tuple[str, str], str] = {}
        self._items = 0
        self._lock = asyncio.Lock()

    @property
    def detail_kinds(self) -> set[str]:
        return {kind for kind in DETAILS if kind in self.summary.parts}

    # ------------------------------------------------------------------ details

    def due(
        self,
        session_ids: Sequence[str] | None = None,
        *,
        refresh: bool = False,
        failed: bool = True,
    ) -> dict[str, set[str]]:
        """The details to ask for (the storage's rule, `detail_due`; `session_ids` None: every
        stored session), with `failed` every pair in the detail failure ledger whose session is
        still stored completed."""
        kinds = self.detail_kinds
        if not kinds:
            return {}
        now = self.clock()
        due: dict[str, set[str]] = {}
        if session_ids is None or session_ids:
            due = self.store.detail_due(kinds, now, DETAIL_SETTLE, session_ids, refresh=refresh)
        if not failed:
            return due
        for sid, wanted in self._failed_due(kinds, now).items():
            due.setdefault(sid, set()).update(wanted)
        return due

    def _failed_due(self, kinds: Collection[str], now: datetime) -> dict[str, set[str]]:
        """The pairs of the detail failure ledger whose session is still stored completed."""
        pairs = [(sid, kind) for sid, kind in self.store.pending_detail_failures() if kind in kinds]
        due: dict[str, set[str]] = {}
        if pairs:
            retry = sorted({sid for sid, _ in pairs})
            eligible = self.store.detail_due(kinds, now, DETAIL_SETTLE, retry, refresh=True)
            for sid, kind in pairs:
                if sid in eligible:
                    due.setdefault(sid, set()).add(kind)
        return due

    async def fetch_due(self, page_size: int = DUE_PAGE) -> None:
        """What `fetch_details(due())` does, with the sessions read from the database a page at
        a time in id order and each page's details fetched and written before the next is read:
        what a run holds is a page's, not the account's (a first sync of a million sessions).
        The ledger's failed pairs are read first (there are few) and asked for with their
        session's page, so a session is asked for once."""
        kinds = self.detail_kinds
        if not kinds:
            return
        now = self.clock()
        failed = self._failed_due(kinds, now)
        after: str | None = None
        while not self.should_stop():
            page = self.store.detail_due_page(kinds, now, DETAIL_SETTLE, after, page_size)
            due: dict[str, Collection[str]] = {}
            for sid, wanted in page:
                retry = failed.pop(sid, None)
                if retry or wanted:
                    due[sid] = retry.union(wanted) if retry else wanted
            await self.fetch_details(due)
            if len(page) < page_size:
                break
            after = page[-1][0]
        if failed and not self.should_stop():
            await self.fetch_details(failed)  # their sessions left the walk while it went on

    async def fetch_details(self, due: Mapping[str, Collection[str]]) -> None:
        """Ask for every due detail with `concurrency` workers and store what comes."""
        pairs = iter([(sid, kind) for sid in sorted(due) for kind in DETAILS if kind in due[sid]])
        self.summary.details_asked += sum(len(kinds) for kinds in due.values())
        workers = [asyncio.create_task(self._worker(pairs)) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        finally:
            await asyncio.shield(self.flush())

    async def _worker(self, pairs: Any) -> None:
        for session_id, kind in pairs:
            if self.should_stop():
                return
            await self._fetch_detail(session_id, kind)
            if self._items >= self.batch_size or len(self._failures) >= self.batch_size:
                await self.flush()

    async def _fetch_detail(self, session_id: str, kind: str) -> None:
        parse = parse_member if kind == MEMBERS else parse_recording
        pages = (
            self.client.list_members(session_id)
            if kind == MEMBERS
            else self.client.list_recordings(session_id)
        )
        rows: list[Mapping[str, Any]] = []
        try:
            async with contextlib.aclosing(pages) as walk:
                async for page in walk:
                    rows.extend(parse(item, session_id) for item in page)
        except (ApiError, PayloadError) as exc:
            self._fail(session_id, kind, visible(str(exc)))
            return
        self._details.append(Detail(session_id, kind, rows, is_final(kind, rows)))
        self._items += max(1, len(rows))

    def _fail(self, session_id: str, kind: str, reason: str) -> None:
        log.warning(
            "failed the %s of session %s: %s",
            kind,
            session_id,
            reason,
            extra={"session_id": session_id, "detail": kind},
        )
        self.summary.fail(session_id, kind, reason)
        self._failures[(session_id, kind)] = reason

    async def flush(self) -> None:
        """Write the details and failures in hand, in one transaction."""
        async with self._lock:
            details, self._details = self._details, []
            failures, self._failures = self._failures, {}
            self._items = 0
            if not details and not failures:
                return
            await self._check_lock()
            now = self.clock()
            if not details:
                await asyncio.to_thread(
                    self.store.record_detail_failures,
                    failures,
                    self.run_id,
                    now,
                    dry_run=self.dry_run,
                )
                return
            written = await asyncio.to_thread(
                self.store.write_details,
                details,
                now,
                failures=failures,
                run_id=self.run_id,
                dry_run=self.dry_run,
            )
        for kind, counted in written.items.items():
            self.summary.items[kind].update(counted)
        for (session_id, kind), reason in written.refused.items():
            log.warning("failed the %s of session %s: %s", kind, session_id, reason)
            self.summary.fail(session_id, kind, reason)

    # ------------------------------------------------------------------ rooms

    async def sync_rooms(self) -> None:
        """One walk of the rooms list; after a complete one, the rooms it lacked are marked."""
        listed: set[str] = set()
        try:
            async with contextlib.aclosing(self.client.list_rooms()) as walk:
                async for page in walk:
                    rows = [row for row in (self._room(item, listed) for item in page) if row]
                    await self._write("rooms", self.store.write_rooms, rows)
                    if self.should_stop():
                        return
        except ApiError as exc:
            self._error(f"listing rooms failed: {exc}")
            return
        now = self.clock()
        await self._check_lock()
        gone = await asyncio.to_thread(
            self.store.mark_rooms_gone, listed, now, dry_run=self.dry_run
        )
        self.summary.rooms_gone += gone

    def _room(self, item: Any, listed: set[str]) -> Mapping[str, Any] | None:
        known = _id_of(item)
        if known is not None:
            listed.add(known)  # a room listed with a bad body is not gone
        try:
            return parse_room(item)
        except PayloadError as exc:
            self._item_failed("rooms", str(exc))
            return None

    # ------------------------------------------------------------------ charges

    async def sync_charges(self, overlap: timedelta, *, full: bool = False) -> None:
        """Walk the video logs from where the charges may have changed (see the module)."""
        now = self.clock()
        previous = None if full else self.store.cursor(CHARGES_CURSOR)
        start = self._charges_start(previous, overlap, now)
        newest: datetime | None = None
        failed = 0
        try:
            pages = self.client.list_logs(None if start is None else _iso(start))
            async with contextlib.aclosing(pages) as walk:
                async for page in walk:
                    rows = []
                    for item in page:
                        try:
                            rows.append(parse_video_log(item))
                        except PayloadError as exc:
                            failed += 1
                            self._item_failed("charges", str(exc))
                    for row in rows:
                        created = min(row["created_at"], now + CLOCK_SKEW)
                        newest = created if newest is None or created > newest else newest
                    await self._write("charges", self.store.write_charges, rows)
                    if self.should_stop():
                        return
        except ApiError as exc:
            self._error(f"listing video logs failed: {exc}")
            return
        if failed:
            return  # the cursor stays: the next walk reads the bad entries again
        moment = (
            newest if previous is None or (newest is not None and newest > previous) else previous
        )
        if moment is not None:
            await self._check_lock()
            await asyncio.to_thread(
                self.store.set_cursor, CHARGES_CURSOR, moment, now, dry_run=self.dry_run
            )

    def _charges_start(
        self, previous: datetime | None, overlap: timedelta, now: datetime
    ) -> datetime | None:
        if previous is None:
            return None
        try:
            start = min(previous, now + CLOCK_SKEW) - overlap
        except OverflowError:
            return None
        open_since = self.store.oldest_open_charge(now - CHARGES_REACH)
        if open_since is not None and open_since <= start:
            start = open_since - timedelta(seconds=1)  # created_after is exclusive
        return start

    # ------------------------------------------------------------------ shared

    async def _write(self, part: str, write: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        await self._check_lock()
        written = await asyncio.to_thread(write, rows, self.clock(), dry_run=self.dry_run)
        self.summary.items[part].update(written.counts())
        for row_id, reason in written.refused.items():
            log.warning("failed %s item %s: %s", part, row_id, reason)
            self.summary.errors.append(f"{part}: {row_id}: {reason}")

    async def _check_lock(self) -> None:
        if self.before_write is not None:
            await asyncio.to_thread(self.before_write)

    def _item_failed(self, part: str, reason: str) -> None:
        reason = visible(reason)
        log.warning("failed %s item: %s", part, reason)
        self.summary.items[part][str(Outcome.FAILED)] += 1
        if len(self.summary.errors) < MAX_SHOWN_FAILURES:
            self.summary.errors.append(f"{part}: {reason}")

    def _error(self, message: str) -> None:
        message = visible(message)
        if self.on_error is not None:
            self.on_error(message)
            return
        log.error("%s", message)
        self.summary.errors.append(message)


def _id_of(item: Any) -> str | None:
    try:
        return canonical_uuid(item.get("id") if isinstance(item, dict) else None)
    except (ValueError, TypeError):
        return None
