"""The run: ids -> fetch (bounded concurrency) -> parse/validate -> batched upsert -> summary.

A `Run` is three parts and the stop flag they share: the `Fetcher` (at most
`settings.concurrency` requests in flight: that many workers pull ids from one shared iterator,
each doing one request, with its retries, at a time), the `BatchWriter` (parsed rows written in
batches by one writer at a time, off the event loop, while the workers keep fetching) and the
`Tally` (the summary's accounting). A command's body talks to the run through its methods only.
Every run has a row in the ledger, and the ids that fail are recorded there with the batch they
belong to.

SIGINT/SIGTERM (when the CLI asks for it): stop taking new ids and stop retrying, let the
requests in hand finish, write the batch in hand, record the run as interrupted. A second signal
abandons the requests in flight at once; what was already parsed is still written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sized
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from . import logs
from .bill_sync import BillFetch, BillSummary
from .config import DETAILS, Settings, fd_bounded_concurrency
from .errors import ApiError, NotFoundError, PayloadError, RoomsyncError
from .idfiles import FailedFirst
from .outcomes import COUNTED, Outcome, RunOutcome
from .records import SessionRow, parse_session
from .safe_text import visible
from .shard import Shard, ShardIds
from .signalwire import ClientStats, SignalWireClient
from .storage import BatchResult, Store, chunked

log = logging.getLogger(__name__)

SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


class Progress(Protocol):
    """Told how many ids a run will fetch (None when unknown), then as ids are done: `done` more
    ids finished, `failures` ids of the run have failed so far."""

    def start(self, total: int | None) -> None: ...

    def advance(self, done: int, failures: int = 0) -> None: ...


MAX_SHOWN_FAILURES = 100  # failed ids a summary lists; the failure ledger holds every one


@dataclass
class Summary:
    """Counts per outcome for one run, and the first failed ids with why (a run of a million
    failing ids keeps no more of them in memory: the failure ledger has them all)."""

    requested: int = 0
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    failures: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    interrupted: str | None = None  # the signal's name
    run_id: int | None = None
    errors: list[str] = field(default_factory=list)  # run-level failures, e.g. a list that broke
    retries: int = 0  # requests made again after a retryable failure
    requests: dict[str, int] = field(default_factory=dict)  # responses by HTTP status, `error`
    dry_run: bool = False  # the counts say what would have been written; nothing was
    bill: BillSummary | None = None  # the rest of the bill, when the run fetched any of it

    def take_stats(self, stats: ClientStats) -> None:
        self.retries = stats.retries
        self.requests = dict(stats.requests)

    @property
    def throttled(self) -> int:
        """How many 429 responses the run got."""
        return self.requests.get("429", 0)

    def add(self, outcome: Outcome, n: int = 1) -> None:
        self.counts[outcome] += n

    def add_failure(self, session_id: str, reason: str) -> None:
        self.add(Outcome.FAILED)
        if len(self.failures) < MAX_SHOWN_FAILURES:
            self.failures[session_id] = reason

    @property
    def exit_code(self) -> int:
        """0 when every id was stored or confirmed not found, 1 when any failed."""
        if self.interrupted:
            return SIGNAL_EXIT.get(self.interrupted, 1)
        return 1 if self._failed else 0

    @property
    def _failed(self) -> bool:
        """Any id, run-level step or detail of the bill failed."""
        bill_failed = self.bill is not None and self.bill.failed
        return bool(self.counts[Outcome.FAILED] or self.errors or bill_failed)

    @property
    def outcome(self) -> RunOutcome:
        if self.interrupted:
            return RunOutcome.INTERRUPTED
        return RunOutcome.FAILED if self._failed else RunOutcome.OK

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "requested": self.requested,
            **{str(outcome): n for outcome, n in self.counts.items()},
            "elapsed_s": round(self.elapsed_s, 3),
            "failed_ids": sorted(self.failures),  # the first ones; the ledger holds them all
            "retries": self.retries,
            "throttled": self.throttled,
        }
        if self.dry_run:
            result["dry_run"] = True
        if self.interrupted:
            result["interrupted"] = self.interrupted
        if self.errors:
            result["errors"] = list(self.errors)
        if self.bill is not None:
            result["bill"] = self.bill.to_dict()
        return result


class Tally:
    """The summary's accounting: what each id came to, counted once per id however often it
    failed and then settled in the run, and the progress shown as ids are done. The run's
    failed ids are kept as 128-bit integers, about 70 bytes each."""

    def __init__(self, summary: Summary, progress: Progress | None) -> None:
        self.summary = summary
        self._progress = progress
        self._failed_keys: set[int] = set()  # ids failed in this run and not settled since

    def asked(self, n: int = 1) -> None:
        """`n` more ids asked for."""
        self.summary.requested += n

    def failed(self, session_id: str, reason: str) -> None:
        """This id failed (again, perhaps: a failure counts once per id)."""
        key = uuid.UUID(session_id).int
        if key in self._failed_keys:
            self.summary.failures.pop(session_id, None)
            self.summary.add(Outcome.FAILED, -1)
        self._failed_keys.add(key)
        self.summary.add_failure(session_id, reason)

    def failed_unidentified(self) -> None:
        """A list item without a usable id failed: counted, but it has no id to keep."""
        self.summary.add(Outcome.FAILED)

    def settled(self, session_id: str) -> None:
        """This id is stored or confirmed unknown: a failure of it earlier in the run no longer
        counts."""
        if self._failed_keys:  # else nothing to look up: no id of the run has failed so far
            key = uuid.UUID(session_id).int
            if key in self._failed_keys:
                self._failed_keys.discard(key)
                self.summary.add(Outcome.FAILED, -1)
        self.summary.failures.pop(session_id, None)

    def not_found(self) -> None:
        self.summary.add(Outcome.NOT_FOUND)

    def skipped(self, n: int) -> None:
        self.asked(n)
        self.summary.add(Outcome.SKIPPED, n)

    def written(self, result: BatchResult) -> None:
        """Count a written batch: each id's outcome, or its failure when the database refused
        its row."""
        for session_id, outcome in result.outcomes.items():
            reason = result.refused.get(session_id)
            if reason is None:
                self.summary.add(outcome)
                continue
            log.warning("failed %s: %s", session_id, reason, extra={"session_id": session_id})
            self.summary.add_failure(session_id, reason)
            self._failed_keys.add(uuid.UUID(session_id).int)

    def run_error(self, message: str) -> None:
        """A failure of the run rather than of an id (a list walk that broke): exit 1."""
        self.summary.errors.append(message)

    def interrupted(self, signal_name: str) -> None:
        self.summary.interrupted = signal_name

    def advance(self, done: int) -> None:
        if self._progress is not None and done:
            self._progress.advance(done, failures=self.summary.counts[Outcome.FAILED])


class BatchWriter:
    """The batch in hand: rows, failures and ids confirmed unknown, written by one writer at a
    time, off the event loop, at most `batch_size` rows a statement, once enough is in hand (a
    run where every id fails must not keep all of them in memory until the end)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        tally: Tally,
        *,
        run_id: int | None,
        dry_run: bool,
        before_write: Callable[[], None] | None,
        in_ledger: Iterable[str] = (),
    ) -> None:
        self._settings = settings
        self._store = store
        self._tally = tally
        self._run_id = run_id
        self._dry_run = dry_run
        self._before_write = before_write  # raises to stop before a write (a lost lock)
        self._rows: list[SessionRow] = []
        self._failures: dict[str, str] = {}  # failures not written yet
        self._not_found: list[str] = []  # ids confirmed unknown, to leave the failure ledger
        self._gone: list[str] = []  # of those, the ones to mark deleted upstream
        self._listed: set[str] = set()  # ids of pending rows that came from the list
        # Ids that may be in the failure ledger: there when the run started, or failed since.
        # Only those of the ids confirmed unknown cost a statement to leave it (a 404 of an id
        # never failed costs no database work); 128-bit integers, failures only.
        self._in_ledger: set[int] = {uuid.UUID(i).int for i in in_ledger}
        self._lock = asyncio.Lock()

    def add_row(self, row: SessionRow, *, listed: bool = False) -> None:
        self._rows.append(row)
        if listed:
            self._listed.add(row["id"])
        self._failures.pop(row["id"], None)

    def add_failure(self, session_id: str, reason: str) -> None:
        self._failures[session_id] = reason

    def add_not_found(self, session_id: str) -> None:
        self._failures.pop(session_id, None)
        self._not_found.append(session_id)

    def add_gone(self, session_id: str) -> None:
        """An id confirmed unknown by the API itself: mark it deleted upstream."""
        self._gone.append(session_id)

    def full(self) -> bool:
        """Enough rows, or failures, in hand to be worth a transaction."""
        size = self._settings.batch_size
        return max(len(self._rows), len(self._failures), len(self._not_found)) >= size

    async def flush(self) -> None:
        """Write what is in hand; the workers keep fetching (and may add rows) meanwhile."""
        async with self._lock:
            while self._rows or self._failures or self._not_found:
                await self._write_one_batch()

    async def _write_one_batch(self) -> None:
        if self._before_write is not None:  # before taking anything out of the batch in hand
            await asyncio.to_thread(self._before_write)
        size = self._settings.batch_size
        rows, self._rows = self._rows[:size], self._rows[size:]
        failures, self._failures = self._failures, {}
        not_found, self._not_found = self._not_found, []
        gone, self._gone = self._gone, []
        listed = {row["id"] for row in rows if row["id"] in self._listed}
        self._listed -= listed
        self._in_ledger.update(uuid.UUID(i).int for i in failures)
        in_ledger = self._in_ledger  # empty: no id to convert (none in the ledger, none failed)
        resolved = [i for i in not_found if in_ledger and uuid.UUID(i).int in in_ledger]
        result = await asyncio.to_thread(
            self._store.write_batch,
            rows,
            datetime.now(UTC),
            failures=failures,
            resolved=resolved,
            run_id=self._run_id,
            listed=listed,
            gone=gone,
            dry_run=self._dry_run,
        )
        self._in_ledger.update(uuid.UUID(i).int for i in result.refused)
        self._tally.written(result)


class Fetcher:
    """The worker pool: `concurrency` workers pull ids from one shared iterator, each doing one
    request (with its retries) at a time, and hand what they get to the run."""

    def __init__(self, run: Run, tally: Tally, concurrency: int) -> None:
        self._run = run
        self._tally = tally
        self._concurrency = concurrency
        self._keep = False  # a sync keeps the ids it asked for by id (a backfill not: a
        self.fetched: set[str] = set()  # million ids would sit in memory for nothing)

    def keep_fetched(self) -> None:
        self._keep = True

    async def fetch_ids(self, client: SignalWireClient, ids: Iterable[str]) -> None:
        iterator = iter(ids)
        workers = [
            asyncio.create_task(self._worker(client, iterator)) for _ in range(self._concurrency)
        ]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise

    async def _worker(self, client: SignalWireClient, ids: Iterator[str]) -> None:
        for session_id in ids:
            self._tally.asked()
            await self._fetch_one(client, session_id)
            await self._run.one_done()
            if self._run.stopping():
                return

    async def _fetch_one(self, client: SignalWireClient, session_id: str) -> None:
        if self._keep:
            self.fetched.add(session_id)
        try:
            payload = await client.get_room_session(session_id)
            row = parse_session(payload, session_id)
        except NotFoundError:
            self._run.not_found(session_id)
            if not self._run.stopping() and await client.is_the_api():
                # A 404 means "deleted upstream" only from a server known to be the API: a wrong
                # path in SIGNALWIRE_SPACE, or a proxy, answers 404 to everything.
                self._run.gone(session_id)
            return
        except (ApiError, PayloadError) as exc:
            self._run.fail(session_id, str(exc))
            return
        self._run.fetched(row)


class Run:
    """One run: its fetcher, its batch writer and its accounting, and the stop flag they share.
    What a command's body (sync, backfill) may do with a run is in its methods."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        run_id: int | None = None,
        failed_at_start: Iterable[str] = (),
        progress: Progress | None = None,
        dry_run: bool = False,
        before_write: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.summary = Summary(run_id=run_id, dry_run=dry_run)
        self._stop = asyncio.Event()
        self._failed_at_start = list(failed_at_start)  # the failure ledger when the run started
        self._tally = Tally(self.summary, progress)
        self._writer = BatchWriter(
            settings,
            store,
            self._tally,
            run_id=run_id,
            dry_run=dry_run,
            before_write=before_write,
            in_ledger=self._failed_at_start,
        )
        self._fetcher = Fetcher(self, self._tally, settings.concurrency)

    # -- what a command's body asks of the run

    @property
    def failed_at_start(self) -> list[str]:
        """Ids in the failure ledger when the run started, in its order."""
        return self._failed_at_start

    def stopping(self) -> bool:
        """Whether the run is being stopped (a signal): take no new work."""
        return self._stop.is_set()

    def keep_fetched_ids(self) -> None:
        """Remember every id asked for by id from now on (see `fetched_ids`)."""
        self._fetcher.keep_fetched()

    def fetched_ids(self) -> set[str]:
        """Ids asked for by id since `keep_fetched_ids`."""
        return self._fetcher.fetched

    async def fetch_ids(self, client: SignalWireClient, ids: Iterable[str]) -> None:
        """Fetch and store every id with `concurrency` workers; stops early when stopping."""
        await self._fetcher.fetch_ids(client, ids)
        await self.flush()

    async def add_rows(self, rows: list[SessionRow]) -> None:
        """Take rows parsed elsewhere (a list page); write them once a batch is full."""
        self._tally.asked(len(rows))
        for row in rows:
            self._writer.add_row(row, listed=True)
            self._tally.settled(row["id"])
        self._tally.advance(len(rows))
        if self._writer.full():
            await self.flush()

    def reject_item(self, session_id: str | None, reason: str) -> None:
        """A list item that cannot be stored: one more id asked for, and failed. Without a
        usable id it cannot enter the failure ledger; it is counted and logged only."""
        self._tally.asked()
        if session_id is None:
            log.warning("failed list item: %s", reason)
            self._tally.failed_unidentified()
        else:
            self.fail(session_id, reason)

    def skip(self, n: int) -> None:
        """`n` ids left alone (stored final with their final cost): asked for, not fetched."""
        if n:
            self._tally.skipped(n)
            log.info("skipped %d ids stored final with their final cost", n)
            self._tally.advance(n)

    def run_error(self, message: str) -> None:
        """A failure of the run itself (a list walk that broke): logged, kept in the summary
        and the ledger, exit 1."""
        log.error("%s", message)
        self._tally.run_error(message)

    # -- what the fetcher, the signal handlers and `execute` tell the run

    def fetched(self, row: SessionRow) -> None:
        self._writer.add_row(row)
        self._tally.settled(row["id"])

    def not_found(self, session_id: str) -> None:
        """The API does not know this id: it leaves the failure ledger."""
        self._tally.not_found()
        self._writer.add_not_found(session_id)
        self._tally.settled(session_id)

    def gone(self, session_id: str) -> None:
        """The API itself does not know this id: mark it deleted upstream."""
        self._writer.add_gone(session_id)

    def fail(self, session_id: str, reason: str) -> None:
        """This id failed: count it and record it in the failure ledger with the next batch.

        The reason quotes the API or the payload: it is stored and shown with its control
        characters made visible (it is a message about the data, not the data).
        """
        reason = visible(reason)
        log.warning("failed %s: %s", session_id, reason, extra={"session_id": session_id})
        self._tally.failed(session_id, reason)
        self._writer.add_failure(session_id, reason)

    async def one_done(self) -> None:
        """A worker finished an id: write the batch if it is full, show progress."""
        if self._writer.full():
            await self.flush()
        self._tally.advance(1)

    async def flush(self) -> None:
        await self._writer.flush()

    def stop(self, signal_name: str) -> None:
        """The first signal: stop taking new ids and stop retrying."""
        self._tally.interrupted(signal_name)
        self._stop.set()

    async def sleep(self, seconds: float) -> None:
        """The wait between attempts: a stop (the first signal) ends it at once, and the client
        then sends no retry."""
        try:
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        except TimeoutError:
            pass


def _install_signal_handlers(run: Run, main_task: asyncio.Task[Any]) -> Callable[[], None]:
    """First SIGINT/SIGTERM: stop after the ids in hand. Second: cancel at once."""
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if run.stopping():
            main_task.cancel()
            return
        log.warning("%s received: finishing the ids in hand, then stopping", sig.name)
        run.stop(sig.name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    def remove() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return remove


Body = Callable[[Run, SignalWireClient], Awaitable[None]]


def execute(
    command: str,
    settings: Settings,
    store: Store,
    body: Body,
    *,
    progress: Progress | None = None,
    handle_signals: bool = False,
    finish: Callable[[Run], dict[str, Any]] | None = None,
    before_write: Callable[[], None] | None = None,
    dry_run: bool = False,
    stats: ClientStats | None = None,
) -> Summary:
    """Run `body` as one ledgered run of `command` and return its summary.

    The ledger row is closed whatever happens: `ok`/`failed`/`interrupted` from the summary, or
    `error` with the message when an exception (auth, database) ends the run early. `finish`
    may add columns (e.g. a sync's watermark) to the closing ledger update. `before_write` is
    called before every batch is written (a sync checks that it still holds its lock).

    A dry run writes nothing at all: no ledger row, no killed-run marks; its batches are written
    in transactions that are rolled back (`write_batch(dry_run=True)`), so the counts come from
    the very statement a real run executes. `stats` (the client's counters) may be passed in to
    read them even when the run ends in an error.
    """
    stats = ClientStats() if stats is None else stats
    settings = _within_fd_limit(settings)
    if dry_run:
        run_id = None
        failed_before = store.pending_failures()
    else:
        store.mark_dead_runs()
        failed_before = store.pending_failures()
        run_id = store.start_run(command)
    with logs.bind(command=command, **({"run_id": run_id} if run_id is not None else {})):
        return _execute(
            command,
            settings,
            store,
            body,
            run_id,
            failed_before,
            progress,
            handle_signals,
            finish,
            dry_run,
            stats,
            before_write,
        )


def _within_fd_limit(settings: Settings) -> Settings:
    """`settings` with a concurrency the open-file limit allows: lowered, with one warning, when
    --concurrency asks for more sockets than the limit leaves (etl.config.fd_bounded_concurrency);
    a slower run is the same run, where EMFILE would have failed every id or the whole run."""
    allowed, limit = fd_bounded_concurrency(settings.concurrency)
    if allowed >= settings.concurrency:
        return settings
    log.warning(
        "the open-file limit (ulimit -n) is %d: running %d requests at a time instead of "
        "--concurrency %d (each holds a socket); raise the limit to run more",
        limit,
        allowed,
        settings.concurrency,
    )
    return dataclasses.replace(settings, concurrency=allowed)


def _execute(
    command: str,
    settings: Settings,
    store: Store,
    body: Body,
    run_id: int | None,
    failed_before: list[str],
    progress: Progress | None,
    handle_signals: bool,
    finish: Callable[[Run], dict[str, Any]] | None,
    dry_run: bool,
    stats: ClientStats,
    before_write: Callable[[], None] | None,
) -> Summary:
    run = Run(
        settings,
        store,
        run_id=run_id,
        failed_at_start=failed_before,
        progress=progress,
        dry_run=dry_run,
        before_write=before_write,
    )
    started = time.monotonic()
    if dry_run:
        log.info("%s: dry run, nothing will be written", command)
    else:
        log.info("%s: run %d started", command, run_id)

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        remove = _install_signal_handlers(run, task) if handle_signals else None
        try:
            async with SignalWireClient(
                settings, should_stop=run.stopping, sleep=run.sleep, stats=stats
            ) as client:
                try:
                    await body(run, client)
                finally:
                    await asyncio.shield(run.flush())
        finally:
            if remove is not None:
                remove()

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        if run.summary.interrupted is None:
            raise
        # A second signal cancelled the run: it ends interrupted like the first, only sooner.
    except BaseException as exc:
        run.summary.take_stats(stats)
        if run_id is None:
            raise
        interrupted = isinstance(exc, KeyboardInterrupt | asyncio.CancelledError)
        outcome = RunOutcome.INTERRUPTED if interrupted else RunOutcome.ERROR
        _record_end(store, run_id, outcome, run.summary, visible(str(exc)) or type(exc).__name__)
        raise
    run.summary.elapsed_s = time.monotonic() - started
    run.summary.take_stats(stats)
    if run_id is None:
        return run.summary
    extra = finish(run) if finish is not None else {}
    error = visible("; ".join(run.summary.errors)) or None
    store.finish_run(run_id, run.summary.outcome, run.summary.to_dict(), error=error, **extra)
    return run.summary


def _record_end(
    store: Store, run_id: int, outcome: RunOutcome, summary: Summary, error: str
) -> None:
    """Close the ledger row of a run ended by an error, if the database still lets us (a new
    connection often works when the one in use was lost); never hide the error that ended it."""
    try:
        store.finish_run(run_id, outcome, summary.to_dict(), error=error)
    except RoomsyncError as exc:
        log.warning("could not record the end of run %s in the ledger: %s", run_id, exc)


def bill_for(
    run: Run,
    client: SignalWireClient,
    settings: Settings,
    parts: Collection[str],
    now: datetime | None = None,
    before_write: Callable[[], None] | None = None,
) -> BillFetch:
    """The bill's side of this run (etl.bill_sync), counted in the run's summary; `now` fixes
    its clock (a simulation's virtual time), else it reads this machine's."""
    fetch = BillFetch(
        run.store,
        client,
        parts=parts,
        run_id=run.summary.run_id,
        concurrency=settings.concurrency,
        batch_size=settings.batch_size,
        should_stop=run.stopping,
        dry_run=run.summary.dry_run,
        on_error=run.run_error,
        before_write=before_write,
        **({} if now is None else {"clock": lambda: now}),
    )
    run.summary.bill = fetch.summary
    return fetch


DETAIL_CHUNK = 5000  # ids looked up per query for the details of a backfill


async def fetch_details_of(
    run: Run,
    client: SignalWireClient,
    settings: Settings,
    parts: Collection[str],
    ids: Iterable[str],
    *,
    refresh: bool,
    retry_failed: bool,
    shard: Shard | None = None,
) -> None:
    """The members and recordings (those of `parts`) of the sessions among `ids` that are
    stored completed and due by the storage's rule, or all of them with `refresh` (`fetch`,
    `backfill --refresh`); with `retry_failed`, the details in the detail failure ledger too
    (of this shard only, with `shard`). `ids` is read again, a chunk at a time."""
    kinds = [part for part in parts if part in DETAILS]
    if not kinds or run.stopping():
        return  # `--with none`: the summary has no `bill`
    fetch = bill_for(run, client, settings, kinds)
    if retry_failed:
        due = fetch.due([], failed=True)
        if shard is not None:
            due = {sid: kinds for sid, kinds in due.items() if shard.owns(sid)}
        await fetch.fetch_details(due)
    for chunk in chunked(ids, DETAIL_CHUNK):
        if run.stopping():
            break
        await fetch.fetch_details(fetch.due(chunk, refresh=refresh, failed=False))
    log.info("%s", fetch.summary.describe())


def without_exact(run: Run, ids: Iterable[str]) -> Iterator[str]:
    """`ids` less those stored final with their final cost (nothing the API says can change
    them, short of a later update, which `--refresh` is for), looked up a chunk at a time so a
    streamed file stays streamed. Ids waiting in the failure ledger are always asked for."""
    retrying = set(run.failed_at_start)
    for chunk in chunked(ids):
        exact = run.store.exact_ids(chunk) - retrying
        run.skip(len(exact))
        yield from (session_id for session_id in chunk if session_id not in exact)


def run_ids(
    ids: Iterable[str],
    settings: Settings,
    store: Store,
    *,
    command: str = "backfill",
    retry_failed: bool = False,
    skip_exact: bool = False,
    shard: Shard | None = None,
    progress: Progress | None = None,
    handle_signals: bool = False,
    dry_run: bool = False,
    stats: ClientStats | None = None,
    with_parts: Collection[str] = DETAILS,
) -> Summary:
    """Fetch and store every id as one ledgered run; with `retry_failed`, the ids waiting in the
    failure ledger first (read once, when the run starts). With `shard`, only the ids of that
    shard, the failed ones included (etl/shard.py). With `skip_exact`, ids stored final with
    their final cost are counted `skipped` and not asked for (see `without_exact`). A dry run
    writes nothing (execute). Then, for the `with_parts` named (members, recordings), the
    details of those ids that are due (see `fetch_details_of`)."""

    async def body(run: Run, client: SignalWireClient) -> None:
        todo: Iterable[str] = FailedFirst(run.failed_at_start, ids) if retry_failed else ids
        if shard is not None:
            todo = ShardIds(todo, shard)
        if progress is not None:
            progress.start(len(todo) if isinstance(todo, Sized) else None)
        await run.fetch_ids(client, without_exact(run, todo) if skip_exact else todo)
        await fetch_details_of(
            run, client, settings, with_parts, todo, refresh=not skip_exact,
            retry_failed=retry_failed, shard=shard,
        )  # fmt: skip

    return execute(
        command,
        settings,
        store,
        body,
        progress=progress,
        handle_signals=handle_signals,
        dry_run=dry_run,
        stats=stats,
    )
