"""The run: ids -> fetch (bounded concurrency) -> parse/validate -> batched upsert -> summary.

At most `settings.concurrency` requests are in flight: that many workers pull ids from one
shared iterator, each doing one request (with its retries) at a time. Parsed rows are written in
batches by one writer at a time, off the event loop, while the workers keep fetching. Every run
has a row in the ledger, and the ids that fail are recorded there with the batch they belong to.

SIGINT/SIGTERM (when the CLI asks for it): stop taking new ids and stop retrying, let the
requests in hand finish, write the batch in hand, record the run as interrupted. A second signal
abandons the requests in flight at once; what was already parsed is still written.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from . import logs
from .config import Settings
from .errors import ApiError, NotFoundError, PayloadError, RoomsyncError
from .idfiles import FailedFirst
from .outcomes import COUNTED, Outcome, RunOutcome
from .records import SessionRow, parse_session
from .safe_text import visible
from .shard import Shard, ShardIds
from .signalwire import ClientStats, SignalWireClient
from .storage import Store, chunked

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
        return 1 if self.counts[Outcome.FAILED] or self.errors else 0

    @property
    def outcome(self) -> RunOutcome:
        if self.interrupted:
            return RunOutcome.INTERRUPTED
        failed = self.counts[Outcome.FAILED] or self.errors
        return RunOutcome.FAILED if failed else RunOutcome.OK

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
        return result


class Run:
    """State shared by the workers of one run: the summary, the batch in hand, the stop flag."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        run_id: int | None = None,
        failed_at_start: Iterable[str] = (),
        progress: Progress | None = None,
        dry_run: bool = False,
    ) -> None:
        self.settings = settings
        self.store = store
        self.run_id = run_id
        self.progress = progress
        self.dry_run = dry_run
        self.summary = Summary(run_id=run_id, dry_run=dry_run)
        self.stop = asyncio.Event()
        self.failed_at_start = list(failed_at_start)  # the failure ledger when the run started
        self.unidentified = 0  # list items without a usable id: failed, but not in the ledger
        self._rows: list[SessionRow] = []
        self._failures: dict[str, str] = {}  # failures not written yet
        self._not_found: list[str] = []  # ids confirmed unknown, to leave the failure ledger
        self._gone: list[str] = []  # of those, the ones to mark deleted upstream
        self._failed_keys: set[int] = set()  # ids failed in this run and not settled since
        self._listed: set[str] = set()  # ids of pending rows that came from the list
        self.track_fetched = False  # a sync keeps the ids it asked for by id (a backfill not:
        self.fetched_by_id: set[str] = set()  # a million ids would sit in memory for nothing)
        self._write_lock = asyncio.Lock()
        self.before_write: Callable[[], None] | None = None  # raises to stop before a write

    async def fetch_ids(self, client: SignalWireClient, ids: Iterable[str]) -> None:
        """Fetch and store every id with `concurrency` workers; stops early when `stop` is set."""
        iterator = iter(ids)
        workers = [
            asyncio.create_task(self._worker(client, iterator))
            for _ in range(self.settings.concurrency)
        ]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        await self.flush()

    async def _worker(self, client: SignalWireClient, ids: Iterator[str]) -> None:
        for session_id in ids:
            self.summary.requested += 1
            await self._fetch_one(client, session_id)
            if self._batch_full():
                await self.flush()
            if self.progress is not None:
                self.progress.advance(1, failures=self.summary.counts[Outcome.FAILED])
            if self.stop.is_set():
                return

    async def _fetch_one(self, client: SignalWireClient, session_id: str) -> None:
        if self.track_fetched:
            self.fetched_by_id.add(session_id)
        try:
            payload = await client.get_room_session(session_id)
            self._rows.append(parse_session(payload, session_id))
        except NotFoundError:
            self.summary.add(Outcome.NOT_FOUND)
            self._settled(session_id)
            self._not_found.append(session_id)
            if not self.stop.is_set() and await client.is_the_api():
                # A 404 means "deleted upstream" only from a server known to be the API: a wrong
                # path in SIGNALWIRE_SPACE, or a proxy, answers 404 to everything.
                self._gone.append(session_id)
            return
        except (ApiError, PayloadError) as exc:
            self.fail(session_id, str(exc))
            return
        self._settled(session_id)

    def _settled(self, session_id: str) -> None:
        """This id is stored or confirmed unknown: a failure of it earlier in this run no longer
        counts (one not written yet is dropped; a written one leaves the ledger with the id's
        batch). The run's failed ids are kept as 128-bit integers, about 70 bytes each."""
        self._failures.pop(session_id, None)
        key = uuid.UUID(session_id).int
        if key in self._failed_keys:
            self._failed_keys.discard(key)
            self.summary.add(Outcome.FAILED, -1)
        self.summary.failures.pop(session_id, None)

    def fail(self, session_id: str, reason: str) -> None:
        """This id failed: count it and record it in the failure ledger with the next batch.

        The reason quotes the API or the payload: it is stored and shown with its control
        characters made visible (it is a message about the data, not the data).
        """
        reason = visible(reason)
        log.warning("failed %s: %s", session_id, reason, extra={"session_id": session_id})
        key = uuid.UUID(session_id).int
        if key in self._failed_keys:  # failed again in this run: counted once
            self.summary.failures.pop(session_id, None)
            self.summary.add(Outcome.FAILED, -1)
        self._failed_keys.add(key)
        self.summary.add_failure(session_id, reason)
        self._failures[session_id] = reason

    async def sleep(self, seconds: float) -> None:
        """The wait between attempts: a stop (the first signal) ends it at once, and the client
        then sends no retry."""
        try:
            async with asyncio.timeout(seconds):
                await self.stop.wait()
        except TimeoutError:
            pass

    def reject_item(self, session_id: str | None, reason: str) -> None:
        """A list item that cannot be stored: one more id asked for, and failed. Without a
        usable id it cannot enter the failure ledger; it is counted and logged only."""
        self.summary.requested += 1
        if session_id is None:
            log.warning("failed list item: %s", reason)
            self.summary.add(Outcome.FAILED)
            self.unidentified += 1
        else:
            self.fail(session_id, reason)

    async def add_rows(self, rows: list[SessionRow]) -> None:
        """Take rows parsed elsewhere (a list page); write them once a batch is full."""
        self.summary.requested += len(rows)
        for row in rows:
            self._rows.append(row)
            self._listed.add(row["id"])
            self._settled(row["id"])
        if self.progress is not None and rows:
            self.progress.advance(len(rows), failures=self.summary.counts[Outcome.FAILED])
        if self._batch_full():
            await self.flush()

    @property
    def retrying(self) -> set[str]:
        """Ids in the failure ledger when the run started: always asked for."""
        return set(self.failed_at_start)

    def skip(self, n: int) -> None:
        """`n` ids left alone (stored final with their final cost): asked for, not fetched."""
        if n:
            self.summary.requested += n
            self.summary.add(Outcome.SKIPPED, n)
            log.info("skipped %d ids stored final with their final cost", n)
            if self.progress is not None:
                self.progress.advance(n, failures=self.summary.counts[Outcome.FAILED])

    def _batch_full(self) -> bool:
        """Enough rows, or failures, in hand to be worth a transaction (a run where every id
        fails must not keep all of them in memory until the end)."""
        size = self.settings.batch_size
        return max(len(self._rows), len(self._failures), len(self._not_found)) >= size

    async def flush(self) -> None:
        """Write what is in hand, at most `batch_size` rows a statement; one writer at a time,
        in a thread, so the workers keep fetching (and may add rows while a batch is written)."""
        async with self._write_lock:
            while self._rows or self._failures or self._not_found:
                await self._write_one_batch()

    async def _write_one_batch(self) -> None:
        if self.before_write is not None:  # before taking anything out of the batch in hand
            await asyncio.to_thread(self.before_write)
        size = self.settings.batch_size
        rows, self._rows = self._rows[:size], self._rows[size:]
        failures, self._failures = self._failures, {}
        not_found, self._not_found = self._not_found, []
        gone, self._gone = self._gone, []
        listed = {row["id"] for row in rows if row["id"] in self._listed}
        self._listed -= listed
        result = await asyncio.to_thread(
            self.store.write_batch,
            rows,
            datetime.now(UTC),
            failures=failures,
            resolved=not_found,
            run_id=self.run_id,
            listed=listed,
            gone=gone,
            dry_run=self.dry_run,
        )
        for session_id, outcome in result.outcomes.items():
            if session_id in result.refused:
                log.warning(
                    "failed %s: %s",
                    session_id,
                    result.refused[session_id],
                    extra={"session_id": session_id},
                )
                self.summary.add_failure(session_id, result.refused[session_id])
                self._failed_keys.add(uuid.UUID(session_id).int)
            else:
                self.summary.add(outcome)


def _install_signal_handlers(run: Run, main_task: asyncio.Task[Any]) -> Callable[[], None]:
    """First SIGINT/SIGTERM: stop after the ids in hand. Second: cancel at once."""
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if run.stop.is_set():
            main_task.cancel()
            return
        log.warning("%s received: finishing the ids in hand, then stopping", sig.name)
        run.summary.interrupted = sig.name
        run.stop.set()

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
    )
    run.before_write = before_write
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
                settings, should_stop=run.stop.is_set, sleep=run.sleep, stats=stats
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


def without_exact(run: Run, ids: Iterable[str]) -> Iterator[str]:
    """`ids` less those stored final with their final cost (nothing the API says can change
    them, short of a later update, which `--refresh` is for), looked up a chunk at a time so a
    streamed file stays streamed. Ids waiting in the failure ledger are always asked for."""
    retrying = run.retrying
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
) -> Summary:
    """Fetch and store every id as one ledgered run; with `retry_failed`, the ids waiting in the
    failure ledger first (read once, when the run starts). With `shard`, only the ids of that
    shard, the failed ones included (etl/shard.py). With `skip_exact`, ids stored final with
    their final cost are counted `skipped` and not asked for (see `without_exact`). A dry run
    writes nothing (execute)."""

    async def body(run: Run, client: SignalWireClient) -> None:
        todo: Iterable[str] = FailedFirst(run.failed_at_start, ids) if retry_failed else ids
        if shard is not None:
            todo = ShardIds(todo, shard)
        if progress is not None:
            progress.start(len(todo) if isinstance(todo, Sized) else None)
        await run.fetch_ids(client, without_exact(run, todo) if skip_exact else todo)

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
