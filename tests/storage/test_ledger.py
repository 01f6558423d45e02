"""The ledgers on both backends: runs opened and closed, dead runs found, failures and the
relist queue kept in step."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl.outcomes import RunOutcome
from etl.storage import ledger
from etl.storage.schema import sync_failures, sync_relist, sync_runs

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
A = "00000000-0000-4000-8000-00000000000a"
B = "00000000-0000-4000-8000-00000000000b"
C = "00000000-0000-4000-8000-00000000000c"


def run_row(engine: Engine, run_id: int) -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(sa.select(sync_runs).where(sync_runs.c.id == run_id)).one()


def test_a_run_is_opened_running_and_closed_with_its_counts(engine: Engine) -> None:
    run_id = ledger.start_run(engine, "backfill")
    row = run_row(engine, run_id)
    assert (row.outcome, row.pid, row.finished_at) == ("running", os.getpid(), None)
    counts = {"requested": 5, "inserted": 3, "not_found": 1, "failed": 1, "elapsed_s": 0.1}
    ledger.finish_run(engine, run_id, RunOutcome.FAILED, counts, error="one id failed")
    row = run_row(engine, run_id)
    assert row.outcome == RunOutcome.FAILED and row.error == "one id failed"
    assert (row.requested, row.inserted, row.updated, row.not_found, row.failed) == (5, 3, 0, 1, 1)
    assert row.finished_at is not None


def test_dead_runs_are_marked_killed(engine: Engine) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_id = ledger.start_run(engine, "backfill")
    with engine.begin() as conn:
        conn.execute(
            sa.update(sync_runs).where(sync_runs.c.id == dead_id).values(pid=int(gone.stdout))
        )
    alive_id = ledger.start_run(engine, "backfill")  # this very process: alive
    assert ledger.mark_dead_runs(engine) == 1
    assert run_row(engine, dead_id).outcome == RunOutcome.KILLED
    assert run_row(engine, alive_id).outcome == RunOutcome.RUNNING
    # the sync lock's holder knows every other running sync is dead, wherever it ran
    sync_id = ledger.start_run(engine, "sync")
    assert ledger.mark_dead_runs(engine, all_of_command="sync") == 1
    assert run_row(engine, sync_id).outcome == RunOutcome.KILLED


def test_failures_count_attempts_and_leave_when_cleared(engine: Engine) -> None:
    run_id = ledger.start_run(engine, "backfill")
    with engine.begin() as conn:
        ledger.record_failures(conn, {B: "HTTP 500", A: "x" * 5000}, run_id, NOW)
    later = NOW + timedelta(minutes=1)
    with engine.begin() as conn:
        ledger.record_failures(conn, {A: "HTTP 503"}, run_id, later)
    with engine.connect() as conn:
        rows = {r.session_id: r for r in conn.execute(sa.select(sync_failures)).all()}
    assert (rows[A].attempts, rows[A].error) == (2, "HTTP 503")
    assert (rows[B].attempts, rows[B].error) == (1, "HTTP 500")
    assert ledger.pending_failures(engine) == [B, A]  # oldest failure first
    with engine.begin() as conn:
        ledger.clear_failures(conn, [A, C])
    assert ledger.pending_failures(engine) == [B]


def test_long_errors_are_cut_to_the_limit(engine: Engine) -> None:
    run_id = ledger.start_run(engine, "backfill")
    with engine.begin() as conn:
        ledger.record_failures(conn, {A: "x" * 5000}, run_id, NOW)
    with engine.connect() as conn:
        error = conn.execute(sa.select(sync_failures.c.error)).scalar_one()
    assert len(error) == ledger.ERROR_MAX_CHARS


def test_relist_queue_keeps_the_first_entry_and_reports_the_oldest(engine: Engine) -> None:
    assert ledger.oldest_to_relist(engine) is None
    with engine.begin() as conn:
        ledger.queue_relist(conn, [(A, NOW), (B, NOW - timedelta(days=2))])
        ledger.queue_relist(conn, [(A, NOW - timedelta(days=9))])  # already queued: kept as is
    assert ledger.oldest_to_relist(engine) == NOW - timedelta(days=2)
    with engine.begin() as conn:
        ledger.unqueue_relist(conn, [B])
    assert ledger.oldest_to_relist(engine) == NOW
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sync_relist)).scalar() == 1


def test_last_watermark_is_the_latest_syncs(engine: Engine) -> None:
    assert ledger.last_watermark(engine) is None
    for watermark in (NOW, None, NOW - timedelta(hours=1)):
        run_id = ledger.start_run(engine, "sync")
        ledger.finish_run(engine, run_id, RunOutcome.OK, {}, watermark=watermark)
    backfill = ledger.start_run(engine, "backfill")
    ledger.finish_run(engine, backfill, RunOutcome.OK, {}, watermark=NOW + timedelta(days=1))
    assert ledger.last_watermark(engine) == NOW - timedelta(hours=1)
