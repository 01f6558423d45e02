"""The cron wrapper: env file, flock, log, roomsync's exit code; and the systemd pair."""

from __future__ import annotations

import configparser
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT, TOKEN

from etl.fake_api import FakeSignalWire

CRON = Path(__file__).resolve().parent.parent / "cron"
WRAPPER = CRON / "roomsync-cron.sh"


def write_env(tmp_path: Path, api: FakeSignalWire, url: str, token: str = TOKEN) -> Path:
    roomsync = Path(sys.executable).parent / "roomsync"
    env_file = tmp_path / "roomsync.env"
    env_file.write_text(
        f"SIGNALWIRE_SPACE={api.base_url}\n"
        f"SIGNALWIRE_PROJECT_ID={PROJECT}\n"
        f"SIGNALWIRE_API_TOKEN={token}\n"
        f"DATABASE_URL={url}\n"
        f"ROOMSYNC={roomsync}\n"
        f"ROOMSYNC_LOG={tmp_path / 'log' / 'sync.log'}\n"
        f"ROOMSYNC_LOCK={tmp_path / 'sync.lock'}\n"
    )
    return env_file


def run_wrapper(env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(WRAPPER), str(env_file)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_wrapper_runs_sync_and_logs_the_summary(
    api: FakeSignalWire, migrated_url: str, tmp_path: Path
) -> None:
    done = run_wrapper(write_env(tmp_path, api, migrated_url))
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "log" / "sync.log").read_text()
    summary_line = next(line for line in log.splitlines() if '"listed"' in line)
    summary = json.loads(summary_line.split(" ", 1)[1])
    assert summary["listed"] == len(api.sessions) and summary["failed"] == 0
    assert "sync exited 0" in log
    assert TOKEN not in log


def test_wrapper_passes_roomsync_exit_code_through(
    api: FakeSignalWire, migrated_url: str, tmp_path: Path
) -> None:
    done = run_wrapper(write_env(tmp_path, api, migrated_url, token="not-the-token"))
    assert done.returncode == 3
    log = (tmp_path / "log" / "sync.log").read_text()
    assert "SIGNALWIRE_API_TOKEN" in log and "not-the-token" not in log


def test_wrapper_skips_when_another_run_holds_the_lock(
    api: FakeSignalWire, migrated_url: str, tmp_path: Path
) -> None:
    env_file = write_env(tmp_path, api, migrated_url)
    with open(tmp_path / "sync.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = run_wrapper(env_file)
    assert done.returncode == 0
    assert "skipped" in (tmp_path / "log" / "sync.log").read_text()
    assert api.total_requests == 0


def test_missing_env_file_is_exit_3(tmp_path: Path) -> None:
    done = run_wrapper(tmp_path / "absent.env")
    assert done.returncode == 3 and "cannot read env file" in done.stderr


def test_systemd_units_point_at_the_wrapper_and_run_periodically() -> None:
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read(CRON / "roomsync-sync.service")
    assert service["Service"]["Type"] == "oneshot"
    assert "roomsync-cron.sh" in service["Service"]["ExecStart"]
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(CRON / "roomsync-sync.timer")
    assert timer["Timer"]["OnUnitActiveSec"] and timer["Install"]["WantedBy"] == "timers.target"
    crontab = [
        line
        for line in (CRON / "roomsync.crontab").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(crontab) == 1 and crontab[0].split()[5].endswith("roomsync-cron.sh")


def test_sigterm_to_the_wrapper_reaches_roomsync_and_the_log(
    migrated_url: str, tmp_path: Path
) -> None:
    import signal
    import time

    from etl.fake_api import generate_sessions

    sessions = generate_sessions(60, seed=41)
    with FakeSignalWire(sessions, project_id=PROJECT, token=TOKEN, latency=0.3) as api:
        env_file = write_env(tmp_path, api, migrated_url)
        process = subprocess.Popen(
            ["bash", str(WRAPPER), str(env_file), "--page-size", "1", "--concurrency", "1"],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while api.total_requests < 3:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 143
    log = (tmp_path / "log" / "sync.log").read_text()
    assert '"interrupted": "SIGTERM"' in log and "sync exited 143" in log
