"""`roomsync sync`: keep the table current with no id list, from cron. The list first.

The list is the cheap source (1,000 sessions a request, with the cost get-by-id lacks); get-by-id
is the precise one. One run:
1. Plan (`plan_walk`): the walk goes down, newest first, to the previous watermark less the
   overlap (`--overlap`, default in etl.config) and to the oldest row still waiting for its
   final cost. Live rows older than that are looked at the cheapest way: walking on down to
   them, one `status=in-progress` filter walk, or by id (see `plan_walk`).
2. Walk the list and store what it returns (list items carry the cost; a completed session's
   is final). The list has no date filter and no documented order: the first run (or `--full`)
   walks every page, and an early stop happens only while every item so far came newest first;
   otherwise the walk goes on to the end.
3. By id, only what no walk could settle: failed ids, live rows no walk returned, and rows
   waiting for their cost that the walk passed without seeing. A stored session answering 404
   is marked `deleted_at` (etl.storage.sessions) and is never asked for again by a sync.

Only one sync runs at a time (etl.storage.lock); another that finds the lock taken does nothing.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from .config import CLOCK_SKEW, DEFAULT_OVERLAP, DETAILS, MAX_PAGE_SIZE, SYNC_PARTS, Settings
from .errors import ApiError, PayloadError
from .idset import IdSet
from .outcomes import LIVE_UPSTREAM
from .pipeline import (
    Progress,
    Run,
    Summary,
    bill_for,
    execute,
    fetch_details_of,
    without_exact,
)
from .records import SessionRow, canonical_uuid, parse_session
from .signalwire import ClientStats, SignalWireClient
from .storage import OpenRow, Store, no_lock

log = logging.getLogger(__name__)

# An id already in canonical form (lowercase 8-4-4-4-12 hex) is its own canonical_uuid: the
# API reference shows ids so, and the round trip through uuid.UUID costs 3 µs an item.
_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


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
    _seen: IdSet = field(default_factory=IdSet, repr=False)  # 16 bytes an id

    def reach_back_to(self, created_at: datetime) -> None:
        """Do not stop early before listing sessions created at `created_at` again."""
        if self.stop_before is not None and created_at < self.stop_before:
            self.stop_before = created_at

    def first_time(self, session_id: str) -> bool:
        """False for an item already listed in this walk (pages can shift while it runs)."""
        return self._seen.add(session_id)

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


class Probe(StrEnum):
    """How a sync looks at live rows older than its walk needs to go (see `plan_walk`)."""

    WALK = "walk"
    FILTER = "in-progress-filter"
    BY_ID = "by-id"


@dataclass
class Plan:
    """Where the list walk may stop (None: walk every page) and how to see older live rows."""

    stop_before: datetime | None
    probe: Probe | None = None
    old_live: list[OpenRow] = field(default_factory=list)


@dataclass
class SyncResult:
    skipped: bool
    summary: Summary | None = None
    listing: Listing | None = None
    refreshed: int = 0
    probe: Probe | None = None
    live_listed: int = 0

    @property
    def exit_code(self) -> int:
        return 0 if self.summary is None else self.summary.exit_code

    def to_dict(self) -> dict[str, Any]:
        if self.summary is None or self.listing is None:
            return {"skipped": True, "reason": "another sync is running"}
        # `skipped` here keeps its meaning for sync: the run was skipped (another held the
        # lock). A sync never skips ids, so the outcome count of that name is always 0.
        return {
            **self.summary.to_dict(),
            "skipped": False,
            "listed": self.listing.listed,
            "refreshed": self.refreshed,
            "in_progress_listed": self.live_listed,
            "probe": None if self.probe is None else str(self.probe),
            "full_pass": self.listing.completed and not self.listing.stopped_early,
        }


def _parse_list_item(run: Run, listing: Listing, item: Any) -> SessionRow | None:
    raw_id = item.get("id") if isinstance(item, dict) else None
    try:
        if isinstance(raw_id, str) and _CANONICAL_ID.fullmatch(raw_id):
            session_id = raw_id
        else:
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


class PagePolicy(Protocol):
    """What a list walk keeps of each page, and whether it may stop before the list's end."""

    def keep(self, run: Run, page: list[Any]) -> list[SessionRow]:
        """The rows of `page` to store (items that cannot be stored are the run's to count)."""
        ...

    def done(self) -> bool:
        """Whether the walk has all it came for (asked after each page is stored)."""
        ...


async def walk(
    run: Run,
    client: SignalWireClient,
    policy: PagePolicy,
    page_size: int,
    what: str = "listing sessions",
    **filters: str,
) -> bool:
    """Walk the list (with `filters`, e.g. the in-progress filter) and store what `policy`
    keeps of each page, until the list's end or until the policy is done. Returns whether the
    walk ended as planned: False when it broke (a run error, `what` failed: the sync exits 1;
    see SignalWireClient.list_room_sessions for a walk that cannot end) or the run is stopping.
    """
    try:
        async for page in client.list_room_sessions(page_size=page_size, **filters):
            await run.add_rows(policy.keep(run, page))
            if run.stopping():
                return False
            if policy.done():
                break
    except ApiError as exc:
        run.run_error(f"{what} failed: {exc}")
        return False
    return True


@dataclass
class NewestFirst:
    """A sync's policy: parse every item; store each id once in the run (`taken`, shared by
    its walks), while every item counts for the order and the stop; done once the walk is
    past `listing.stop_before`, newest first.

    `taken=None`: no walk before this one took anything and nothing reads `taken` after it
    (see `_needs_taken`), so the listing's own once-per-walk check is the whole of it: one
    lookup and 18 bytes an id fewer for a first sync."""

    listing: Listing
    taken: IdSet | None

    def keep(self, run: Run, page: list[Any]) -> list[SessionRow]:
        rows: list[SessionRow] = []
        for item in page:
            row = _parse_list_item(run, self.listing, item)
            if row is None:
                continue
            self.listing.observe(row["created_at"])
            if self.taken is None or self.taken.add(row["id"]):
                rows.append(row)
        return rows

    def done(self) -> bool:
        if self.listing.past_watermark():
            self.listing.stopped_early = True
            return True
        return False


async def _walk(
    run: Run,
    client: SignalWireClient,
    listing: Listing,
    page_size: int,
    taken: IdSet | None,
    **filters: str,
) -> bool:
    """A sync's walk (see `NewestFirst`); the listing is complete when it ended as planned."""
    what = "listing live sessions" if filters else "listing sessions"
    if not await walk(run, client, NewestFirst(listing, taken), page_size, what, **filters):
        return False
    listing.completed = True
    return True


def _pages(sessions: int, page_size: int) -> int:
    """List pages that hold `sessions` (at least one: a walk always reads its first page)."""
    return max(1, math.ceil(sessions / page_size))


def plan_walk(
    store: Store,
    open_rows: Sequence[OpenRow],
    previous: datetime | None,
    overlap: timedelta,
    page_size: int,
    full: bool,
) -> Plan:
    """How deep the list walk must go, and how to look at live rows older than that.

    The walk reaches back to the previous watermark less the overlap, and to the oldest row
    waiting for its final cost (only the list has it). Live rows older than that are looked at
    the cheapest way, in requests, estimated from the table (how many stored sessions sit above
    a row is about how deep in the list it is):
    - `walk`: walk on down to the oldest of them (their new state and cost come with it);
    - `in-progress-filter`: list `status=in-progress` (pages for every live session), then walk
      down to the oldest of them that is no longer live: it ended, and its final cost is there;
    - `by-id`: ask for each of them by id, then walk down to the oldest that completed.
    Ties go to the walk, then to the filter: both bring costs, by-id bodies do not.
    """
    if full or previous is None:
        return Plan(stop_before=None)
    try:
        stop_before = previous - overlap
    except OverflowError:  # reaching back before year 1: nothing to stop early for
        return Plan(stop_before=None)
    pending = [row for row in open_rows if not row.live and row.created_at < stop_before]
    if pending:
        stop_before = min(row.created_at for row in pending)
    old_live = [row for row in open_rows if row.live and row.created_at < stop_before]
    if not old_live:
        return Plan(stop_before=stop_before)
    oldest = min(row.created_at for row in old_live)
    walk_to_stop = _pages(store.count_since(stop_before), page_size)
    costs = {
        Probe.WALK: _pages(store.count_since(oldest), page_size),
        Probe.FILTER: walk_to_stop + _pages(store.live_count(), page_size),
        Probe.BY_ID: walk_to_stop + len(old_live),
    }
    probe = min(costs, key=lambda p: (costs[p], list(Probe).index(p)))
    log.info(
        "live rows older than the walk: %d; requests by way: %s; chosen: %s",
        len(old_live),
        ", ".join(f"{way} {cost}" for way, cost in costs.items()),
        probe,
    )
    return Plan(stop_before=stop_before, probe=probe, old_live=old_live)


async def _probe(
    run: Run,
    client: SignalWireClient,
    store: Store,
    plan: Plan,
    listing: Listing,
    taken: IdSet,
    size: int,
) -> int:
    """Look at the live rows older than the walk as planned; move the walk's stop so that it
    lists every one of them that ended. Returns the in-progress filter's items."""
    if not plan.old_live:
        return 0
    old_live = sorted(plan.old_live, key=lambda row: row.created_at)
    if plan.probe == Probe.FILTER:
        live = Listing(stop_before=None, previous_watermark=None)
        if await _walk(run, client, live, size, taken, status=LIVE_UPSTREAM):
            ended = [row for row in old_live if row.id not in taken]
        else:
            ended = old_live  # the filter failed: walk down to all of them instead
        if ended:
            listing.reach_back_to(ended[0].created_at)
        return live.listed
    if plan.probe == Probe.BY_ID:
        await run.fetch_ids(client, [row.id for row in old_live])
        probed = {row.id for row in old_live}
        completed = [row for row in store.open_rows() if not row.live and row.id in probed]
        if completed:
            listing.reach_back_to(completed[0].created_at)
        return 0
    listing.reach_back_to(old_live[0].created_at)
    return 0


def _needs_taken(run: Run, open_rows: Sequence[OpenRow], taken: IdSet) -> IdSet | None:
    """`taken` for the last walk of a sync, or None when it would only be written to: no walk
    took anything before (so there is nothing to store twice) and `_still_to_fetch`, its one
    reader after the walks, has no open row and no failed id to ask it about (a first sync)."""
    if len(taken) or open_rows or run.failed_at_start:
        return taken
    return None


def _still_to_fetch(
    run: Run, open_rows: Sequence[OpenRow], taken: IdSet, listing: Listing
) -> list[str]:
    """What only get-by-id can settle now: failed ids and live rows no walk returned, and rows
    waiting for their cost that a finished walk passed without seeing (deleted, most likely)."""
    fetched = run.fetched_ids()

    def done(session_id: str) -> bool:
        return session_id in taken or session_id in fetched

    ids = [i for i in run.failed_at_start if not done(i)]
    for row in open_rows:
        if done(row.id):
            continue
        if row.live or (listing.completed and _passed(listing, row.created_at)):
            ids.append(row.id)
    return list(dict.fromkeys(ids))


def _passed(listing: Listing, created_at: datetime) -> bool:
    """Whether the walk listed every session created at `created_at` (or it walked it all)."""
    if not listing.stopped_early:
        return True
    return listing.last is not None and listing.last < created_at


def run_sync(
    settings: Settings,
    store: Store,
    *,
    full: bool = False,
    overlap: timedelta = DEFAULT_OVERLAP,
    page_size: int = MAX_PAGE_SIZE,
    handle_signals: bool = False,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    stats: ClientStats | None = None,
    with_parts: Collection[str] = SYNC_PARTS,
) -> SyncResult:
    """One sync run, or a skipped one when another holds the lock.

    After the sessions, the rest of the bill named in `with_parts` (etl.bill_sync): the
    members and recordings that are due, one walk of the rooms, the video logs from the
    charges' cursor less `overlap` (every entry with `full`).

    A dry run writes nothing (see `execute`) and takes no lock: holding it would make the real
    sync that cron starts meanwhile skip, and a run that writes nothing cannot clash with one.
    """
    with no_lock() if dry_run else store.held_lock() as lock_check:
        if lock_check is None:
            return SyncResult(skipped=True)
        if not dry_run:
            store.mark_dead_runs(all_of_command="sync")
        not_after = (now or datetime.now(UTC)) + CLOCK_SKEW
        _warn_if_ledger_ahead(store, not_after)
        previous = store.last_watermark()
        if previous is not None:
            previous = min(previous, not_after)  # one recorded by a version without the bound
        try:
            stop_before = None if full or previous is None else previous - overlap
        except OverflowError:  # reaching back before year 1: nothing to stop early for
            stop_before = None
        listing = Listing(stop_before=stop_before, previous_watermark=previous, not_after=not_after)
        result = SyncResult(skipped=False, listing=listing)

        async def body(run: Run, client: SignalWireClient) -> None:
            if progress is not None:
                progress.start(None)  # the list's length is unknown until it is walked
            run.keep_fetched_ids()
            open_rows = store.open_rows()
            plan = plan_walk(store, open_rows, previous, overlap, page_size, full)
            listing.stop_before = plan.stop_before
            result.probe = plan.probe
            taken = IdSet()  # every id a walk stored, 16 bytes each (a first sync lists them all)
            result.live_listed = await _probe(run, client, store, plan, listing, taken, page_size)
            if run.stopping():
                return
            await _walk(run, client, listing, page_size, _needs_taken(run, open_rows, taken))
            if run.stopping():
                return
            ids = _still_to_fetch(run, open_rows, taken, listing)
            await run.fetch_ids(client, ids)
            result.refreshed = len(run.fetched_ids())
            await _sync_bill(run, client, settings, with_parts, overlap, full, now, lock_check)

        def finish(_run: Run) -> dict[str, Any]:
            return {
                "watermark": listing.watermark(),
                "full_pass": listing.completed and not listing.stopped_early,
            }

        result.summary = execute(
            "sync",
            settings,
            store,
            body,
            handle_signals=handle_signals,
            finish=finish,
            before_write=lock_check,
            progress=progress,
            dry_run=dry_run,
            stats=stats,
        )
        return result


def _warn_if_ledger_ahead(store: Store, not_after: datetime) -> None:
    """A sync whose ledger records runs ahead of this clock (it jumped back) still runs: the
    watermark is bounded by this clock, so the walk only reaches back further than needed, and
    its own run, once ok, is the last success `status` measures (by run id, not by time). One
    warning says so; refusing would stop every sync after a clock set right by stepping back."""
    latest = store.latest_recorded("sync")
    if latest is not None and latest > not_after:
        log.warning(
            "the ledger records a sync at %s, ahead of this machine's clock by more than %s: "
            "the clock jumped back, or another host's runs ahead; syncing with the watermark "
            "bounded by this clock",
            latest.isoformat().replace("+00:00", "Z"),
            CLOCK_SKEW,
        )


async def _sync_bill(
    run: Run,
    client: SignalWireClient,
    settings: Settings,
    parts: Collection[str],
    overlap: timedelta,
    full: bool,
    now: datetime | None,
    before_write: Callable[[], None] | None,
) -> None:
    """The rest of the bill, after the sessions: due details, rooms, charges (each write
    after `before_write`, the lock check)."""
    if not parts or run.stopping():
        return
    fetch = bill_for(run, client, settings, parts, now, before_write)
    await fetch.fetch_due()
    if "rooms" in parts and not run.stopping():
        await fetch.sync_rooms()
    if "charges" in parts and not run.stopping():
        await fetch.sync_charges(overlap, full=full)
    log.info("%s", fetch.summary.describe())


def run_via_list(
    ids: Iterable[str],
    settings: Settings,
    store: Store,
    *,
    refresh: bool = False,
    page_size: int = MAX_PAGE_SIZE,
    progress: Progress | None = None,
    handle_signals: bool = False,
    dry_run: bool = False,
    stats: ClientStats | None = None,
    with_parts: Collection[str] = DETAILS,
) -> Summary:
    """Backfill `ids` from one walk of the list (1,000 sessions a request, with their cost),
    then by id only those the list did not return: deleted ones (404, marked) and any the list
    leaves out. The walk stops once every id was seen. Without `refresh`, ids stored final with
    their final cost are not asked for by id (they would be stored from the list for free).
    Ledgered as a `backfill` run."""

    async def body(run: Run, client: SignalWireClient) -> None:
        wanted = {uuid.UUID(session_id).int for session_id in ids}
        if progress is not None:
            progress.start(len(wanted))
        policy = Wanted(wanted)
        await walk(run, client, policy, page_size)  # progress: Run.add_rows
        if run.stopping():
            return
        rest = (session_id for session_id in ids if uuid.UUID(session_id).int not in policy.taken)
        unique = _once(rest)
        await run.fetch_ids(client, unique if refresh else without_exact(run, unique))
        await fetch_details_of(
            run, client, settings, with_parts, ids, refresh=refresh, retry_failed=False
        )

    return execute(
        "backfill",
        settings,
        store,
        body,
        progress=progress,
        handle_signals=handle_signals,
        dry_run=dry_run,
        stats=stats,
    )


def _once(ids: Iterable[str]) -> Iterator[str]:
    seen: set[int] = set()
    for session_id in ids:
        key = uuid.UUID(session_id).int
        if key not in seen:
            seen.add(key)
            yield session_id


@dataclass
class Wanted:
    """A list backfill's policy: store the wanted items only (the others are not parsed at
    all), each once; done once every wanted id was seen. `taken`: the ids (as integers) seen."""

    wanted: set[int]
    taken: set[int] = field(default_factory=set)

    def keep(self, run: Run, page: list[Any]) -> list[SessionRow]:
        rows: list[SessionRow] = []
        for item in page:
            key = _wanted_key(item, self.wanted)
            if key is None or key in self.taken:
                continue
            self.taken.add(key)
            session_id = str(uuid.UUID(int=key))
            try:
                rows.append(parse_session(item, session_id))
            except PayloadError as exc:
                run.reject_item(session_id, str(exc))
        return rows

    def done(self) -> bool:
        return len(self.taken) >= len(self.wanted)


def _wanted_key(item: Any, wanted: set[int]) -> int | None:
    raw_id = item.get("id") if isinstance(item, dict) else None
    try:
        key = uuid.UUID(canonical_uuid(raw_id)).int
    except (ValueError, TypeError):
        return None
    return key if key in wanted else None
