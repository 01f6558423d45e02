"""`roomsync demo`, the README's first command: the whole job end to end on SQLite."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from etl.cli import main
from etl.storage.engines import make_engine


def test_demo_backfills_syncs_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    args = ["demo", "--sessions", "60", "--database-url", url, "--json"]
    first = CliRunner().invoke(main, args, env={"DATABASE_URL": "sqlite:////nonexistent/x.db"})
    assert first.exit_code == 0, first.output
    result = json.loads(first.stdout)
    bill = result["backfill"].pop("bill")  # the members and recordings of the backfilled ids
    assert bill["detail_failed"] == 0 and bill["members"]["inserted"] > 0
    assert result["backfill"] | {"elapsed_s": 0} == {
        "command": "backfill",
        "run_id": 1,
        "run_skipped": False,
        "exit_code": 0,
        "dry_run": False,
        "requested": 62,
        "inserted": 60,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "not_found": 2,
        "failed": 0,
        "elapsed_s": 0,
        "failed_ids": [],
        "retries": 3,  # the scripted 503, 429 and reset
        "throttled": 1,
        "interrupted": None,
        "errors": [],
    }
    assert result["sync"]["listed"] == 60 and result["sync"]["failed"] == 0
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            costs = conn.execute(
                sa.text("SELECT count(cost_in_dollars) FROM room_sessions")
            ).scalar_one()
    finally:
        engine.dispose()
    assert costs > 0  # the sync brought in what only the list carries
    again = json.loads(CliRunner().invoke(main, args).stdout)
    assert again["backfill"]["unchanged"] == 60 and again["sync"]["inserted"] == 0


# ---- `roomsync demo --serve`: a real process, stopped by a real signal


def start_serving(command: list[str], cwd: Path, env: dict[str, str]) -> ServedDemo:
    """Start `command` (a `demo --serve --json` invocation) and read its one JSON line: the
    demo's result and the environment it prints (at most 120 s: it migrates and fills first)."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    line = b""
    deadline = time.monotonic() + 120
    while not line.endswith(b"\n"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _, err = process.communicate(timeout=30)
            pytest.fail(f"demo --serve printed no result line: {err.decode()[-2000:]}")
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line += os.read(process.stdout.fileno(), 65536)
    return ServedDemo(process, json.loads(line))


class ServedDemo:
    def __init__(self, process: subprocess.Popen[bytes], result: dict[str, Any]) -> None:
        self.process = process
        self.result = result
        self.environment: dict[str, str] = result["environment"]

    def stop(self, signum: signal.Signals) -> tuple[int, str]:
        """Send `signum`; the exit code and stderr (it must end within 60 s)."""
        self.process.send_signal(signum)
        try:
            _, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate(timeout=30)
            pytest.fail(f"demo --serve did not stop on {signum.name} within 60 s")
        return self.process.returncode, err.decode()


def port_is_closed(base_url: str) -> bool:
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


def check_served_demo(
    served: ServedDemo, roomsync: list[str], cwd: Path, env: dict[str, str]
) -> None:
    """The printed settings work as printed: check, sync and status against the stand-in."""
    environment = served.environment
    assert set(environment) == {
        "SIGNALWIRE_SPACE",
        "SIGNALWIRE_PROJECT_ID",
        "SIGNALWIRE_API_TOKEN",
        "DATABASE_URL",
    }
    assert environment["SIGNALWIRE_SPACE"].startswith("http://127.0.0.1:")
    use = {**env, **environment}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*roomsync, *args], cwd=cwd, env=use, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stderr[-2000:]}"
        return done

    run("check")
    synced = json.loads(run("sync", "--json").stdout)
    assert synced["listed"] == served.result["sync"]["listed"] and synced["failed"] == 0
    assert json.loads(run("status", "--json").stdout)["sessions"] == synced["listed"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_demo_serve_keeps_the_stand_in_up_until_a_signal(
    signum: signal.Signals, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    command = [sys.executable, "-m", "etl", "demo", "--serve", "--sessions", "15", "--json"]
    served = start_serving(command, tmp_path, env)
    try:
        assert served.result["backfill"]["inserted"] == 15
        # a relative SQLite path is printed absolute: it works from another directory
        assert served.environment["DATABASE_URL"] == f"sqlite:///{tmp_path / 'roomsync-demo.db'}"
        check_served_demo(served, [sys.executable, "-m", "etl"], elsewhere, env)
    finally:
        code, stderr = served.stop(signum)
    assert code == 0, stderr
    assert f"stand-in API stopped ({signum.name})" in stderr and "Traceback" not in stderr
    assert port_is_closed(served.environment["SIGNALWIRE_SPACE"])


def test_demo_serve_text_prints_the_exports(tmp_path: Path) -> None:
    """The text form: the four `export` lines, shell-quoted, that a user pastes."""
    process = subprocess.Popen(
        [sys.executable, "-m", "etl", "demo", "--serve", "--sessions", "5"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = threading.Timer(120, process.kill)  # readline returns "" once it is killed
    deadline.start()
    try:
        # the next step spells roomsync as it was started (here `python -m etl`), so that it
        # works where the user stands
        while not lines or not lines[-1].startswith(f"  {sys.executable} -m etl check"):
            lines.append(process.stdout.readline())
            assert lines[-1], f"ended (or killed after 120 s) before the exports: {lines}"
    finally:
        deadline.cancel()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    process.communicate(timeout=30)
    exports = [line.split()[1] for line in lines if line.startswith("  export ")]
    names = [export.split("=")[0] for export in exports]
    assert names == [
        "SIGNALWIRE_SPACE",
        "SIGNALWIRE_PROJECT_ID",
        "SIGNALWIRE_API_TOKEN",
        "DATABASE_URL",
    ]


def test_port_without_serve_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["demo", "--port", "8080"])
    assert result.exit_code == 2 and "--port goes with --serve" in result.stderr
