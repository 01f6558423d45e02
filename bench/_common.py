"""Shared pieces of the benchmarks: the stand-in API in its own process, and measuring a child.

A child's CPU time and peak RSS come from `os.wait4`, so they are the child's alone (the API
server runs in another process and is not counted). Every child and server has a time limit and
is stopped in a `finally`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent
PROJECT_ID, TOKEN = "bench-project", "bench-token"
STOP_TIMEOUT_S = 10.0


@dataclass
class Measured:
    """What one child process cost: wall time, CPU (user + system), peak RSS, its output."""

    cmd: Sequence[str]
    returncode: int
    wall_s: float
    cpu_s: float
    maxrss_mb: float
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        """The last line of stdout that is a JSON object (the child's own summary)."""
        for line in reversed(self.stdout.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                return dict(json.loads(line))
        raise RuntimeError(
            f"no JSON summary from {' '.join(self.cmd)} (exit {self.returncode}):\n"
            f"{self.stderr[-2000:]}"
        )


def measure(
    cmd: Sequence[str],
    env: Mapping[str, str],
    timeout_s: float,
    *,
    stop_after_s: float | None = None,
) -> Measured:
    """Run `cmd` to the end and return its costs; killed after `timeout_s`.

    `stop_after_s` sends SIGTERM once that much time has passed (a graceful stop), for runs that
    only need to be observed for a while.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=dict(env), stdout=out, stderr=err, cwd=ROOT)
        status, usage = _wait(proc, started, timeout_s, stop_after_s)
        wall = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return Measured(
            cmd=list(cmd),
            returncode=os.waitstatus_to_exitcode(status),
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            maxrss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def _wait(
    proc: subprocess.Popen[bytes], started: float, timeout_s: float, stop_after_s: float | None
) -> tuple[int, Any]:
    """Poll wait4 (every 2 ms) until the child ends; SIGTERM or SIGKILL it on its deadlines."""
    termed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
            return status, usage
        elapsed = time.monotonic() - started
        if stop_after_s is not None and not termed and elapsed > stop_after_s:
            proc.send_signal(signal.SIGTERM)
            termed = True
        if elapsed > timeout_s:
            proc.kill()
        time.sleep(0.002)


@dataclass
class ApiServer:
    """A running bench/api_server.py; `stop()` returns its request statistics."""

    proc: subprocess.Popen[str]
    base_url: str
    stats: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=STOP_TIMEOUT_S)
        for line in reversed((out or "").splitlines()):
            if line.startswith("{"):
                self.stats = json.loads(line)
                break
        return self.stats


@contextlib.contextmanager
def api_server(
    sessions: int,
    latency_ms: float,
    ids_file: Path | None,
    max_seconds: float = 3600.0,
    extra: Sequence[str] = (),
) -> Iterator[ApiServer]:
    """Start the stand-in API on 127.0.0.1 in its own process; stop it whatever happens.
    `extra`: more of bench/api_server.py's options (`--account`)."""
    cmd = [
        sys.executable,
        str(BENCH / "api_server.py"),
        "--sessions",
        str(sessions),
        "--latency-ms",
        str(latency_ms),
        "--project-id",
        PROJECT_ID,
        "--token",
        TOKEN,
        "--max-seconds",
        str(max_seconds),
    ]
    if ids_file is not None:
        cmd += ["--ids-file", str(ids_file)]
    cmd += extra
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    server = ApiServer(proc, "")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()  # the server prints its URL once it listens
        if not line.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the stand-in API did not start: {line!r}")
        server.base_url = line
        yield server
    finally:
        server.stop()


def client_env(base_url: str, database_url: str, **extra: str) -> dict[str, str]:
    """The environment for a client child: the API's settings and the database URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNALWIRE_", "PG"))}
    env.update(
        SIGNALWIRE_SPACE=base_url,
        SIGNALWIRE_PROJECT_ID=PROJECT_ID,
        SIGNALWIRE_API_TOKEN=TOKEN,
        DATABASE_URL=database_url,
        **extra,
    )
    return env


def migrate(database_url: str, timeout_s: float = 120.0) -> None:
    """`roomsync db upgrade` on the database, as a user would."""
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run(
        [str(VENV_BIN / "roomsync"), "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"roomsync db upgrade failed: {result.stderr}")
