"""Issue 22, defect 2: health that a clock set back cannot fool. A sync recorded ahead of this
machine's clock (beyond CLOCK_SKEW) is not fresh, `status` says the clock disagrees, and a sync
still runs (with a warning); both backends.

The clock jumping back is simulated the way it looks from the ledger: the recorded runs are
moved forward, which is what a later clock set back by the same amount sees."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import Invoke
from sqlalchemy.engine import Engine

from etl.config import CLOCK_SKEW
from etl.fake_api import FakeSignalWire, generate_sessions
from etl.storage.reporting import read_status
from etl.storage.schema import room_sessions, sync_runs

TWO_DAYS = timedelta(days=2)


def status_json(invoke: Invoke, env: dict[str, str], *args: str) -> tuple[Result, dict[str, Any]]:
    result = invoke(["status", "--json", *args], env)
    return result, json.loads(result.stdout)


def move_sync_runs(engine: Engine, by: timedelta) -> None:
    """Every sync run recorded `by` later: as if this clock had since been set back by `by`."""
    t = sync_runs
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(t.c.id, t.c.started_at, t.c.finished_at).where(t.c.command == "sync")
        ).all()
        for run_id, started, finished in rows:
            conn.execute(
                sa.update(t)
                .where(t.c.id == run_id)
                .values(started_at=started + by, finished_at=finished and finished + by)
            )


def test_a_success_recorded_in_the_future_is_not_fresh(
    cli_env: dict[str, str], engine: Engine, invoke: Invoke
) -> None:
    assert invoke(["sync"], cli_env).exit_code == 0
    move_sync_runs(engine, TWO_DAYS)
    stale, body = status_json(invoke, cli_env, "--max-age", "30m")
    assert stale.exit_code == 1
    assert body["healthy"] is False and body["clock_disagrees"] is True
    assert body["ledger_ahead_s"] > TWO_DAYS.total_seconds() - 60
    assert "clock disagrees" in stale.stderr
    text = invoke(["status", "--max-age", "1d"], cli_env)
    assert text.exit_code == 1
    assert (
        "ahead of this clock" in text.stdout and "clock:        the clock disagrees" in text.stdout
    )
    assert "s ago" not in text.stdout.split("last sync ok:")[1].splitlines()[0]  # no "-172782s ago"
    plain = invoke(["status"], cli_env)  # without --max-age: still read, still said
    assert plain.exit_code == 0 and "clock disagrees" in plain.stdout


def test_a_success_within_the_allowed_skew_is_still_fresh(
    cli_env: dict[str, str], engine: Engine, invoke: Invoke
) -> None:
    assert invoke(["sync"], cli_env).exit_code == 0
    move_sync_runs(engine, CLOCK_SKEW / 2)
    fresh, body = status_json(invoke, cli_env, "--max-age", "30m")
    assert fresh.exit_code == 0, fresh.output
    assert body["healthy"] is True and body["clock_disagrees"] is False
    assert body["ledger_ahead_s"] is None


def test_the_verdict_follows_the_injected_clock(
    cli_env: dict[str, str], engine: Engine, invoke: Invoke
) -> None:
    assert invoke(["sync"], cli_env).exit_code == 0
    finished = read_status(engine).last_successful_sync.finished_at  # type: ignore[union-attr]
    assert read_status(engine, now=finished + timedelta(minutes=5)).fresh(timedelta(minutes=30))
    behind = read_status(engine, now=finished - TWO_DAYS)
    assert not behind.fresh(timedelta(days=30)) and behind.ledger_ahead() is not None
    edge = read_status(engine, now=finished - CLOCK_SKEW)
    assert edge.fresh(timedelta(minutes=30)) and edge.ledger_ahead() is None


def test_a_sync_after_the_clock_jumped_back_runs_warns_and_heals_the_health_check(
    cli_env: dict[str, str],
    api: FakeSignalWire,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
    invoke: Invoke,
) -> None:
    assert invoke(["sync"], cli_env).exit_code == 0
    move_sync_runs(engine, TWO_DAYS)
    newer = generate_sessions(1, seed=77, now=datetime.now(UTC))[0]
    api.add_session(newer)
    with caplog.at_level(logging.WARNING, logger="etl.sync"):
        result = invoke(["sync", "--json"], cli_env)
    assert result.exit_code == 0, result.output
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "etl.sync" and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1 and "ahead of this machine's clock" in warnings[0]
    with engine.connect() as conn:
        stored = {str(i) for i in conn.execute(sa.select(room_sessions.c.id)).scalars()}
    assert newer["id"] in stored
    healthy, body = status_json(invoke, cli_env, "--max-age", "30m")
    assert healthy.exit_code == 0 and body["clock_disagrees"] is False  # the new run is the last
