"""A run stopped by SIGTERM or killed by SIGKILL keeps what it wrote; the next run finishes."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import PROJECT, TOKEN, env_for
from sqlalchemy.engine import Engine

from etl.fake_api import FakeSignalWire, generate_sessions
from etl.storage.schema import room_sessions, sync_runs

N_SESSIONS = 150


def count_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(room_sessions)).scalar_one()


def run_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(sa.select(sync_runs).order_by(sync_runs.c.id)).all()


def start_roomsync(api: FakeSignalWire, url: str, *args: str) -> subprocess.Popen[str]:
    """`python -m etl ARGS --json` against the stand-in and the database, in a subprocess."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env_for(api, url)}
    return subprocess.Popen(
        [sys.executable, "-m", "etl", *args, "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_backfill(api: FakeSignalWire, url: str, ids_file: Path) -> subprocess.Popen[str]:
    args = ("--concurrency", "2", "--batch-size", "10")
    return start_roomsync(api, url, "backfill", str(ids_file), *args)


def wait_for_rows(engine: Engine, process: subprocess.Popen[str], at_least: int) -> None:
    deadline = time.monotonic() + 30
    while count_rows(engine) < at_least:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the backfill wrote nothing in 30 s"
        time.sleep(0.05)


def wait_for_stderr(process: subprocess.Popen[str], text: str, seconds: float) -> str:
    """Read the process's stderr until `text` shows (at most `seconds`); returns what was read,
    which communicate() will not return again."""
    assert process.stderr is not None
    fd = process.stderr.fileno()
    os.set_blocking(fd, False)
    seen = b""
    deadline = time.monotonic() + seconds
    while text.encode() not in seen:
        assert process.poll() is None, seen.decode(errors="replace")
        assert time.monotonic() < deadline, f"no {text!r} in {seconds} s: {seen!r}"
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            seen += os.read(fd, 65536)
    os.set_blocking(fd, True)
    return seen.decode(errors="replace")


@pytest.fixture
def slow_api() -> Any:
    sessions = generate_sessions(N_SESSIONS, seed=31)
    with FakeSignalWire(sessions, project_id=PROJECT, token=TOKEN, latency=0.02) as server:
        yield server


@pytest.fixture
def ids_file(slow_api: FakeSignalWire, tmp_path: Path) -> Path:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(slow_api.sessions) + "\n")
    return path


def test_sigterm_finishes_the_batch_in_hand_and_records_an_interrupted_run(
    slow_api: FakeSignalWire, ids_file: Path, migrated_url: str, engine: Engine
) -> None:
    process = start_backfill(slow_api, migrated_url, ids_file)
    wait_for_rows(engine, process, 20)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    summary = json.loads(stdout)
    assert summary["interrupted"] == "SIGTERM"
    stored = count_rows(engine)
    assert stored == summary["inserted"] < N_SESSIONS  # every fetched id was written
    assert summary["requested"] == stored  # nothing fetched was dropped
    (run,) = run_rows(engine)
    assert run.outcome == "interrupted" and run.inserted == stored
    rerun = start_backfill(slow_api, migrated_url, ids_file)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert json.loads(out)["inserted"] == N_SESSIONS - stored
    assert count_rows(engine) == N_SESSIONS


def test_sigkill_loses_nothing_committed_and_the_next_run_completes(
    slow_api: FakeSignalWire, ids_file: Path, migrated_url: str, engine: Engine
) -> None:
    process = start_backfill(slow_api, migrated_url, ids_file)
    wait_for_rows(engine, process, 20)
    process.kill()
    process.communicate(timeout=30)
    stored = count_rows(engine)
    assert 20 <= stored < N_SESSIONS
    (run,) = run_rows(engine)
    assert run.outcome == "running"  # it never got to close its ledger row
    rerun = start_backfill(slow_api, migrated_url, ids_file)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    summary = json.loads(out)
    assert summary["inserted"] == N_SESSIONS - stored and summary["unchanged"] == stored
    assert count_rows(engine) == N_SESSIONS
    killed, finished = run_rows(engine)
    assert killed.outcome == "killed" and finished.outcome == "ok"


def test_a_killed_sync_leaves_no_lock_behind_and_the_next_sync_completes(
    slow_api: FakeSignalWire, migrated_url: str, engine: Engine
) -> None:
    args = ("sync", "--page-size", "10", "--batch-size", "10")
    process = start_roomsync(slow_api, migrated_url, *args)
    wait_for_rows(engine, process, 20)
    process.kill()
    process.communicate(timeout=30)
    stored = count_rows(engine)
    assert 20 <= stored < N_SESSIONS
    rerun = start_roomsync(slow_api, migrated_url, *args)
    stdout, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["run_skipped"] is False and summary["full_pass"] is True
    assert count_rows(engine) == N_SESSIONS
    killed, finished = run_rows(engine)
    assert (killed.command, killed.outcome) == ("sync", "killed")
    assert finished.outcome == "ok" and finished.watermark is not None


def test_a_second_signal_stops_at_once_without_a_traceback(
    migrated_url: str, engine: Engine, tmp_path: Path
) -> None:
    """The second SIGINT is sent once the first is seen handled (its warning on stderr), while
    two requests are in flight (seen by the stand-in): no sleep stands in for either state."""
    sessions = generate_sessions(20, seed=32)
    in_flight = threading.Semaphore(0)
    with FakeSignalWire(
        sessions,
        project_id=PROJECT,
        token=TOKEN,
        latency=5.0,
        on_request=lambda path: in_flight.release(),
    ) as api:
        path = tmp_path / "ids.txt"
        path.write_text("\n".join(api.sessions) + "\n")
        process = start_backfill(api, migrated_url, path)
        for _ in range(2):
            assert in_flight.acquire(timeout=30), "the backfill made no two requests in 30 s"
        process.send_signal(signal.SIGINT)
        # The second SIGINT only after the first was handled (two pending SIGINTs would merge
        # into one): its log line is the observable state, not a sleep.
        said = wait_for_stderr(process, "SIGINT received", 30)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
        stderr = said + stderr
    assert process.returncode == 130, stderr
    # The first signal alone would wait for the requests in flight (5 s each) and store them;
    # the second abandoned them: nothing arrived to be stored.
    assert count_rows(engine) == 0
    assert "Traceback" not in stderr
    assert json.loads(stdout)["interrupted"] == "SIGINT"
    (run,) = run_rows(engine)
    assert run.outcome == "interrupted"
