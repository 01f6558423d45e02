"""The cron wrapper: env file, flock, log, roomsync's exit code; and the systemd pair."""

from __future__ import annotations

import configparser
import fcntl
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT, TOKEN

from etl.fake_api import FakeSignalWire

CRON = Path(__file__).resolve().parent.parent / "cron"
# Tests of the wrapper's own behaviour (lock, output) need one database, not each backend.
WRAPPER_ONLY = pytest.mark.parametrize("backend", ["sqlite"])
WRAPPER = CRON / "roomsync-cron.sh"


def write_env(
    tmp_path: Path,
    api: FakeSignalWire,
    url: str,
    token: str = TOKEN,
    *,
    log: bool = True,
    lock: Path | None = None,
) -> Path:
    """The env file; `log=False` leaves ROOMSYNC_LOG out, `lock` replaces the test's lock path
    (a lock of Path() leaves ROOMSYNC_LOCK out, for the wrapper's default)."""
    roomsync = Path(sys.executable).parent / "roomsync"
    env_file = tmp_path / "roomsync.env"
    lock = tmp_path / "sync.lock" if lock is None else lock
    env_file.write_text(
        f"SIGNALWIRE_SPACE={api.base_url}\n"
        f"SIGNALWIRE_PROJECT_ID={PROJECT}\n"
        f"SIGNALWIRE_API_TOKEN={token}\n"
        f"DATABASE_URL={url}\n"
        f"ROOMSYNC={roomsync}\n"
        + (f"ROOMSYNC_LOG={tmp_path / 'log' / 'sync.log'}\n" if log else "")
        + (f"ROOMSYNC_LOCK={lock}\n" if lock != Path() else "")
    )
    return env_file


def run_wrapper(
    env_file: Path | str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(WRAPPER), str(env_file)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})},
        stdin=subprocess.DEVNULL,
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
    assert service["Service"]["ExecStart"].split()[0].endswith("/roomsync-cron.sh")
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(CRON / "roomsync-sync.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"
    # Persistent= (catch up a run missed while the machine was off) works only with OnCalendar=
    # (systemd.timer(5)); a monotonic timer would silently ignore it.
    assert timer["Timer"]["Persistent"] == "true"
    assert not {"OnUnitActiveSec", "OnBootSec", "OnActiveSec"} & set(timer["Timer"])
    crontab = [
        line
        for line in (CRON / "roomsync.crontab").read_text().splitlines()
        if line.strip() and not line.startswith("#") and not re.match(r"\w+=", line)
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


@WRAPPER_ONLY
def test_lock_that_cannot_be_opened_is_an_error_not_a_skip(
    api: FakeSignalWire, migrated_url: str, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-directory").mkdir()
    cases = {
        tmp_path / "a-file" / "sync.lock": "cannot create the lock's directory",
        tmp_path / "a-directory": "cannot open lock file",
    }
    for lock, message in cases.items():
        done = run_wrapper(write_env(tmp_path, api, migrated_url, lock=lock))
        assert done.returncode == 3, (lock, done.stderr)
        assert message in done.stderr and "skipped" not in done.stderr
    assert api.total_requests == 0


@WRAPPER_ONLY
def test_lock_in_a_world_writable_directory_is_refused(
    api: FakeSignalWire, migrated_url: str, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    done = run_wrapper(write_env(tmp_path, api, migrated_url, lock=shared / "sync.lock"))
    assert done.returncode == 3 and "world-writable" in done.stderr
    assert not (shared / "sync.lock").exists() and api.total_requests == 0


def test_default_lock_is_in_the_state_directory_never_in_tmp(tmp_path: Path) -> None:
    """Where the lock goes is the wrapper's business: a stand-in for roomsync that notes each
    start is enough to see which file it locks."""
    starts = tmp_path / "starts"
    stand_in = tmp_path / "roomsync"
    stand_in.write_text(f"#!/bin/sh\necho started >> {starts}\n")
    stand_in.chmod(0o755)
    env_file = tmp_path / "roomsync.env"
    env_file.write_text(f"ROOMSYNC={stand_in}\n")
    homes = {
        "STATE_DIRECTORY": (tmp_path / "state", tmp_path / "state" / "sync.lock"),
        "XDG_STATE_HOME": (tmp_path / "xdg", tmp_path / "xdg" / "roomsync" / "sync.lock"),
        "HOME": (tmp_path / "home", tmp_path / "home" / ".local/state/roomsync/sync.lock"),
    }
    for number, (variable, (directory, lock)) in enumerate(homes.items(), start=1):
        done = run_wrapper(env_file, {variable: str(directory)})
        assert done.returncode == 0, done.stderr
        assert lock.is_file() and starts.read_text().count("started") == number, variable
        with open(lock, "a") as held:  # the wrapper really locks that file: it skips
            fcntl.flock(held, fcntl.LOCK_EX)
            assert run_wrapper(env_file, {variable: str(directory)}).returncode == 0
            assert starts.read_text().count("started") == number, variable
    done = run_wrapper(env_file)  # none of them: no place for the lock
    assert done.returncode == 3 and "no place for the lock" in done.stderr


@WRAPPER_ONLY
def test_without_a_log_file_cron_hears_only_of_failures(
    api: FakeSignalWire, migrated_url: str, tmp_path: Path
) -> None:
    ok = run_wrapper(write_env(tmp_path, api, migrated_url, log=False))
    assert ok.returncode == 0 and api.total_requests > 0
    assert ok.stdout == "" and ok.stderr == ""  # cron sends no mail
    failed = run_wrapper(write_env(tmp_path, api, migrated_url, token="bad-token", log=False))
    assert failed.returncode == 3
    assert "SIGNALWIRE_API_TOKEN" in failed.stderr and "sync exited 3" in failed.stderr
    assert "bad-token" not in failed.stderr + failed.stdout
    assert not (tmp_path / "log").exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith("output.")] == []


@WRAPPER_ONLY
def test_under_systemd_every_run_goes_to_the_journal(
    api: FakeSignalWire, migrated_url: str, tmp_path: Path
) -> None:
    """systemd's EnvironmentFile= has set the environment ("-": no file to read) and connects
    stdout/stderr to the journal (JOURNAL_STREAM); the lock goes in the StateDirectory."""
    env = {
        "SIGNALWIRE_SPACE": api.base_url,
        "SIGNALWIRE_PROJECT_ID": PROJECT,
        "SIGNALWIRE_API_TOKEN": TOKEN,
        "DATABASE_URL": migrated_url,
        "ROOMSYNC": str(Path(sys.executable).parent / "roomsync"),
        "STATE_DIRECTORY": str(tmp_path / "state"),
        "JOURNAL_STREAM": "8:12345",
    }
    done = run_wrapper("-", env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["listed"] == len(api.sessions)
    assert "sync exited 0" in done.stderr and TOKEN not in done.stdout + done.stderr
    assert (tmp_path / "state" / "sync.lock").is_file()


def unit(name: str) -> configparser.ConfigParser:
    parsed = configparser.ConfigParser(strict=False, interpolation=None)
    parsed.optionxform = str  # type: ignore[assignment,method-assign]
    parsed.read(CRON / name)
    return parsed


def test_systemd_service_logs_to_the_journal_and_keeps_its_state_in_state_directory() -> None:
    service = unit("roomsync-sync.service")["Service"]
    assert service["ExecStart"].split()[1:] == ["-"]  # environment from EnvironmentFile=
    assert service["StateDirectory"] == "roomsync"
    assert service["WorkingDirectory"] == "/var/lib/roomsync"
    assert "StandardOutput" not in service and "StandardError" not in service  # the journal
    assert "/var/log" not in (CRON / "roomsync-sync.service").read_text()
    assert service["ProtectSystem"] == "strict" and service["CapabilityBoundingSet"] == ""


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def systemd_version() -> int:
    if SYSTEMD_ANALYZE is None:
        return 0
    first = subprocess.run(
        [SYSTEMD_ANALYZE, "--version"], capture_output=True, text=True, timeout=30
    ).stdout.split()
    return int(first[1]) if len(first) > 1 and first[1].isdigit() else 0


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="no systemd-analyze")
def test_the_timer_fires_every_10_minutes() -> None:
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(CRON / "roomsync-sync.timer")
    assert SYSTEMD_ANALYZE is not None
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "calendar", "--iterations", "4", timer["Timer"]["OnCalendar"]],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "TZ": "UTC"},
    )
    assert done.returncode == 0, done.stderr
    elapses = re.findall(r"(\d\d):(\d\d):(\d\d) UTC", done.stdout)
    minutes = [int(h) * 60 + int(m) for h, m, _ in elapses]
    assert len(minutes) == 4 and all(s == "00" for _, _, s in elapses), done.stdout
    assert {(b - a) % (24 * 60) for a, b in itertools.pairwise(minutes)} == {10}


@pytest.mark.skipif(
    systemd_version() < 252, reason="systemd-analyze security --offline needs systemd >= 252"
)
def test_systemd_units_verify_and_the_service_is_rated_3_or_better(tmp_path: Path) -> None:
    for name in ("roomsync-sync.service", "roomsync-sync.timer"):
        text = (CRON / name).read_text().replace("/opt/roomsync/cron", str(CRON))
        (tmp_path / name).write_text(text)
    units = [str(tmp_path / "roomsync-sync.service"), str(tmp_path / "roomsync-sync.timer")]
    assert SYSTEMD_ANALYZE is not None
    verify = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *units], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    security = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", units[0]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert security.returncode == 0, security.stderr
    overall = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert overall is not None, security.stdout
    assert float(overall.group(1)) <= 3.0, security.stdout
