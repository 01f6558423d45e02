"""`Store`: the storage package's one front door. It holds the engine, the URL and the dialect,
and every other module talks to the database through its methods (as sqlite-utils puts every
table operation behind `Database`); none of them sees SQLAlchemy.

Open one with `Store.open(url)` (write; the schema must be at the newest migration),
`Store.open(url, dry_run=True)` (writes only in transactions rolled back, never creates a file)
or `Store.open(url, readonly=True)` (cannot write; creates nothing). `Store(engine)` wraps an
engine made elsewhere (tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from ..outcomes import RunOutcome
from ..records import SessionRow
from . import backlog, bill, ledger, lock, migrate, reporting, sessions
from .backlog import OpenRow
from .bill import BillTotals, Detail, DetailWritten, Row, Written
from .dberrors import map_errors
from .engines import make_engine, readonly_engine
from .lock import LockCheck
from .reporting import ReportRow, Status
from .sessions import BatchResult


class Store:
    """A database roomsync writes to or reads from: engine, URL (with its secrets, never shown
    unmasked) and dialect, and every operation on its tables."""

    def __init__(self, engine: Engine, url: str = "") -> None:
        self.engine = engine
        self.url = url or engine.url.render_as_string(hide_password=False)
        self.dialect = engine.dialect.name

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, url: str, *, readonly: bool = False, dry_run: bool = False, at_head: bool = True
    ) -> Iterator[Store]:
        """A store for `url`, disposed on exit; with `at_head` (the default) a schema that is
        not at the newest migration is refused before anything is read or written."""
        engine = readonly_engine(url) if readonly else make_engine(url, keep_file_as_is=dry_run)
        store = cls(engine, url)
        try:
            if at_head:
                store.require_head()
            yield store
        finally:
            engine.dispose()

    # ------------------------------------------------------------------ schema

    def revision(self) -> str | None:
        """The revision the database is at; None for an empty database."""
        with map_errors(self.url, "connecting to"), self.engine.connect() as conn:
            return migrate.revision_of(conn)

    def require_head(self) -> str:
        """The head revision; a DatabaseError unless the database is at it."""
        return migrate.require_head(self.revision(), self.url)

    # ------------------------------------------------------------------ sessions

    def write_batch(
        self,
        rows: Sequence[SessionRow],
        now: datetime,
        *,
        failures: Mapping[str, str] | None = None,
        resolved: Collection[str] = (),
        run_id: int | None = None,
        listed: Collection[str] = (),
        gone: Collection[str] = (),
        dry_run: bool = False,
    ) -> BatchResult:
        """One batch, with its ledger entries, in one transaction (sessions.write_batch)."""
        return sessions.write_batch(
            self.engine,
            rows,
            now,
            failures=failures,
            resolved=resolved,
            run_id=run_id,
            listed=listed,
            gone=gone,
            url=self.url,
            dry_run=dry_run,
        )

    # ------------------------------------------------------------------ the rest of the bill

    def write_details(
        self,
        details: Sequence[Detail],
        now: datetime,
        *,
        failures: Mapping[tuple[str, str], str] | None = None,
        run_id: int | None = None,
        dry_run: bool = False,
    ) -> DetailWritten:
        """Members and recordings of sessions, their detail state and the detail ledger, in
        one transaction (bill.write_details)."""
        return bill.write_details(
            self.engine, details, now, failures=failures, run_id=run_id, url=self.url,
            dry_run=dry_run,
        )  # fmt: skip

    def record_detail_failures(
        self,
        failures: Mapping[tuple[str, str], str],
        run_id: int | None,
        now: datetime,
        *,
        dry_run: bool = False,
    ) -> None:
        if run_id is not None:
            bill.record_detail_failures(
                self.engine, failures, run_id, now, url=self.url, dry_run=dry_run
            )

    def detail_due(
        self,
        kinds: Collection[str],
        now: datetime,
        settle: timedelta,
        session_ids: Sequence[str] | None = None,
        *,
        refresh: bool = False,
    ) -> dict[str, set[str]]:
        return bill.detail_due(self.engine, kinds, now, settle, session_ids, refresh=refresh)

    def detail_due_page(
        self,
        kinds: Collection[str],
        now: datetime,
        settle: timedelta,
        after: str | None,
        limit: int,
    ) -> list[tuple[str, tuple[str, ...]]]:
        return bill.detail_due_page(self.engine, kinds, now, settle, after, limit)

    def pending_detail_failures(self) -> list[tuple[str, str]]:
        return bill.pending_detail_failures(self.engine)

    def write_rooms(self, rows: Sequence[Row], now: datetime, *, dry_run: bool = False) -> Written:
        return bill.write_rooms(self.engine, rows, now, url=self.url, dry_run=dry_run)

    def mark_rooms_gone(
        self, listed: Collection[str], now: datetime, *, dry_run: bool = False
    ) -> int:
        return bill.mark_rooms_gone(self.engine, listed, now, url=self.url, dry_run=dry_run)

    def write_charges(
        self, rows: Sequence[Row], now: datetime, *, dry_run: bool = False
    ) -> Written:
        return bill.write_charges(self.engine, rows, now, url=self.url, dry_run=dry_run)

    def cursor(self, name: str) -> datetime | None:
        return bill.cursor(self.engine, name)

    def set_cursor(
        self, name: str, moment: datetime, now: datetime, *, dry_run: bool = False
    ) -> None:
        bill.set_cursor(self.engine, name, moment, now, url=self.url, dry_run=dry_run)

    def oldest_open_charge(self, not_before: datetime) -> datetime | None:
        return bill.oldest_open_charge(self.engine, not_before)

    def bill_totals(self) -> BillTotals:
        return bill.bill_totals(self.engine)

    # ------------------------------------------------------------------ ledger

    def start_run(self, command: str) -> int:
        return ledger.start_run(self.engine, command)

    def finish_run(
        self,
        run_id: int,
        outcome: RunOutcome,
        counts: Mapping[str, Any],
        *,
        error: str | None = None,
        watermark: datetime | None = None,
        full_pass: bool | None = None,
    ) -> None:
        ledger.finish_run(
            self.engine,
            run_id,
            outcome,
            counts,
            error=error,
            watermark=watermark,
            full_pass=full_pass,
        )

    def mark_dead_runs(self, *, all_of_command: str | None = None) -> int:
        return ledger.mark_dead_runs(self.engine, all_of_command=all_of_command)

    def pending_failures(self) -> list[str]:
        return ledger.pending_failures(self.engine)

    def last_watermark(self) -> datetime | None:
        return ledger.last_watermark(self.engine)

    def latest_recorded(self, command: str) -> datetime | None:
        return ledger.latest_recorded(self.engine, command)

    # ------------------------------------------------------------------ backlog

    def open_rows(self) -> list[OpenRow]:
        return backlog.open_rows(self.engine)

    def count_since(self, moment: datetime) -> int:
        return backlog.count_since(self.engine, moment)

    def live_count(self) -> int:
        return backlog.live_count(self.engine)

    def exact_ids(self, session_ids: Sequence[str]) -> set[str]:
        return backlog.exact_ids(self.engine, session_ids)

    # ------------------------------------------------------------------ lock

    def held_lock(self) -> contextlib.AbstractContextManager[LockCheck | None]:
        """The sync lock, without waiting (lock.held_lock)."""
        return lock.held_lock(self.engine)

    # ------------------------------------------------------------------ reading

    def report_rows(
        self, by: str = "day", since: datetime | None = None, until: datetime | None = None
    ) -> list[ReportRow]:
        return reporting.report_rows(self.engine, by, since, until, url=self.url)

    def read_status(
        self, now: datetime | None = None, budget: float | None = None, spend: bool | None = None
    ) -> Status:
        return reporting.read_status(self.engine, now, url=self.url, budget=budget, spend=spend)
