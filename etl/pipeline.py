"""The run: ids -> fetch (bounded concurrency) -> parse/validate -> batched upsert -> summary.

At most `settings.concurrency` requests are in flight: that many workers pull ids from one
shared iterator, each doing one request (with its retries) at a time. Parsed rows are written in
batches by one writer at a time, off the event loop, while the workers keep fetching.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from .config import Settings
from .errors import ApiError, NotFoundError, PayloadError
from .records import parse_session
from .signalwire import SignalWireClient
from .store import INSERTED, UNCHANGED, UPDATED, upsert_sessions

log = logging.getLogger(__name__)

NOT_FOUND, FAILED = "not_found", "failed"
OUTCOMES = (INSERTED, UPDATED, UNCHANGED, NOT_FOUND, FAILED)

Progress = Callable[[int], None]


@dataclass
class Summary:
    """Counts per outcome for one run, and the ids that failed with why."""

    requested: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    failures: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def add(self, outcome: str, n: int = 1) -> None:
        self.counts[outcome] += n

    def fail(self, session_id: str, reason: str) -> None:
        self.counts[FAILED] += 1
        self.failures[session_id] = reason

    @property
    def exit_code(self) -> int:
        """0 when every id was stored or confirmed not found, 1 when any failed."""
        return 1 if self.counts[FAILED] else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            **self.counts,
            "elapsed_s": round(self.elapsed_s, 3),
            "failed_ids": sorted(self.failures),
        }


class _Run:
    """State shared by the workers of one run."""

    def __init__(self, settings: Settings, engine: Engine, progress: Progress | None) -> None:
        self.settings = settings
        self.engine = engine
        self.progress = progress
        self.summary = Summary()
        self.pending: list[dict[str, Any]] = []
        self.write_lock = asyncio.Lock()

    async def worker(self, client: SignalWireClient, ids: Iterator[str]) -> None:
        for session_id in ids:
            self.summary.requested += 1
            await self.fetch_one(client, session_id)
            if len(self.pending) >= self.settings.batch_size:
                await self.flush()
            if self.progress is not None:
                self.progress(1)

    async def fetch_one(self, client: SignalWireClient, session_id: str) -> None:
        try:
            payload = await client.get_room_session(session_id)
            self.pending.append(parse_session(payload, session_id))
        except NotFoundError:
            self.summary.add(NOT_FOUND)
        except (ApiError, PayloadError) as exc:
            log.warning("failed %s: %s", session_id, exc)
            self.summary.fail(session_id, str(exc))

    async def flush(self) -> None:
        """Write what is pending; one writer at a time, in a thread so fetching goes on."""
        async with self.write_lock:
            rows, self.pending = self.pending, []
            if not rows:
                return
            now = datetime.now(UTC)
            outcomes = await asyncio.to_thread(
                upsert_sessions, self.engine, rows, now, self.settings.database_url
            )
            for outcome in outcomes.values():
                self.summary.add(outcome)


async def run_ids_async(
    ids: Iterable[str],
    settings: Settings,
    engine: Engine,
    progress: Progress | None = None,
    client: SignalWireClient | None = None,
) -> Summary:
    """Fetch and store every id; raises AuthError/DatabaseError after saving what was fetched."""
    run = _Run(settings, engine, progress)
    started = time.monotonic()
    iterator = iter(ids)
    own_client = client is None
    client = client or SignalWireClient(settings)
    try:
        tasks = [
            asyncio.create_task(run.worker(client, iterator)) for _ in range(settings.concurrency)
        ]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            await asyncio.shield(run.flush())
    finally:
        if own_client:
            await client.aclose()
    run.summary.elapsed_s = time.monotonic() - started
    return run.summary


def run_ids(
    ids: Iterable[str], settings: Settings, engine: Engine, progress: Progress | None = None
) -> Summary:
    """Synchronous entry point for the CLI and tests."""
    return asyncio.run(run_ids_async(ids, settings, engine, progress))
