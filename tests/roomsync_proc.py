"""Run `python -m etl` as a real process for issue 9's tests: bounded in time, with its own peak
RSS (os.wait4 reports it for that one child), optionally under an address-space limit so that a
product that reads a bomb into memory fails with MemoryError instead of exhausting the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

import sqlalchemy as sa
from conftest import PROJECT, TOKEN
from sqlalchemy.engine import Engine

from etl.storage.schema import room_sessions, sync_failures, sync_relist, sync_runs

ADDRESS_SPACE_LIMIT = 3 << 30  # a safety net only: far above what a bounded run needs


def env_for_url(base_url: str, database_url: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SIGNALWIRE_SPACE": base_url,
        "SIGNALWIRE_PROJECT_ID": PROJECT,
        "SIGNALWIRE_API_TOKEN": TOKEN,
        "DATABASE_URL": database_url,
    }


@dataclass
class Finished:
    """How a roomsync process ended. `returncode` is None when the test had to kill it at its
    deadline (it did not end by itself); negative for a signal."""

    returncode: int | None
    stdout: str
    stderr: str
    max_rss_mb: float

    def summary(self) -> dict[str, Any]:
        assert self.stdout.strip(), f"no JSON summary on stdout; stderr: {self.stderr[-2000:]}"
        result: dict[str, Any] = json.loads(self.stdout.strip().splitlines()[-1])
        return result

    def one_line_error(self) -> str:
        """The one `roomsync: error:` line of stderr (log lines may surround it); asserts there
        is no traceback."""
        assert "Traceback" not in self.stderr, self.stderr[-3000:]
        errors = [line for line in self.stderr.splitlines() if line.startswith("roomsync: error:")]
        assert len(errors) == 1, f"not one error line: {self.stderr[-2000:]}"
        return errors[0]


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


RUN_COMMANDS = ("fetch", "backfill", "sync")


def sessions_only(args: list[str]) -> list[str]:
    """The process tests here are about the sessions (their stand-ins serve nothing else):
    `fetch`, `backfill` and `sync` run with `--with none` unless the test names the parts.
    The bill end to end: tests/test_sync_bill.py."""
    if args and args[0] in RUN_COMMANDS and "--with" not in args:
        return [*args, "--with", "none"]
    return args


class Roomsync:
    """A started `python -m etl ARGS` process; `finish()` waits for it (bounded)."""

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str],
        *,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        limit_memory: bool = True,
        shell: str | None = None,
    ) -> None:
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 (closed in finish)
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 (closed in finish)
        command = [sys.executable, "-m", "etl", *sessions_only(args)]
        if shell is not None:
            command = ["bash", "-c", shell]
        self.process = subprocess.Popen(
            command,
            env={**env, "PYTHON": sys.executable},
            stdin=stdin,
            stdout=self._out,
            stderr=self._err,
            preexec_fn=_limit_address_space if limit_memory else None,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def finish(self, timeout: float) -> Finished:
        """Wait up to `timeout` seconds; kill it (returncode None) if it has not ended."""
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            self.process.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            if self.process.returncode is None:
                _, status, usage = os.wait4(self.process.pid, 0)
                self.process.returncode = os.waitstatus_to_exitcode(status)
                self.max_rss_mb = usage.ru_maxrss / 1024
        except BaseException:
            # The test itself was stopped (pytest-timeout, Ctrl-C): end the child here, so that
            # it is not found still running, as a ResourceWarning, in whichever test runs next.
            self.process.kill()
            self.process.wait(timeout=30)
            self._out.close()
            self._err.close()
            raise
        finally:
            timer.cancel()
        self._out.seek(0)
        self._err.seek(0)
        stdout = self._out.read().decode("utf-8", "replace")
        stderr = self._err.read().decode("utf-8", "replace")
        self._out.close()
        self._err.close()
        code = None if killed.is_set() else self.process.returncode
        return Finished(code, stdout, stderr, getattr(self, "max_rss_mb", 0.0))


def roomsync(
    args: list[str],
    env: Mapping[str, str],
    *,
    timeout: float = 30,
    feed: Callable[[IO[bytes]], None] | None = None,
    limit_memory: bool = True,
) -> Finished:
    """Run `python -m etl ARGS` to the end (at most `timeout` s); `feed` writes its stdin."""
    if feed is None:
        return Roomsync(args, env, limit_memory=limit_memory).finish(timeout)
    proc = Roomsync(args, env, stdin=subprocess.PIPE, limit_memory=limit_memory)
    stdin = proc.process.stdin
    assert stdin is not None

    def write() -> None:
        try:
            feed(stdin)
        except (BrokenPipeError, ValueError, OSError):
            pass  # the reader stopped reading: what a bound on input should do
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    result = proc.finish(timeout)
    writer.join(timeout=5)
    return result


# --------------------------------------------------------------------------- database views


def stored(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {str(r.id): dict(r._mapping) for r in conn.execute(sa.select(room_sessions))}


def failures(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        query = sa.select(sync_failures.c.session_id, sync_failures.c.error)
        return {str(i): str(e) for i, e in conn.execute(query)}


def runs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        query = sa.select(sync_runs).order_by(sync_runs.c.id)
        return [dict(r._mapping) for r in conn.execute(query)]


def relist(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {str(i) for i in conn.execute(sa.select(sync_relist.c.session_id)).scalars()}


def assert_raw_is_valid_json(engine: Engine) -> None:
    """`raw` read back as text parses as strict JSON (no NaN/Infinity) on every row; on SQLite
    json_valid agrees."""
    sqlite = engine.dialect.name == "sqlite"
    query = (
        "SELECT id, raw, json_valid(raw) FROM room_sessions"
        if sqlite
        else "SELECT id, raw::text, true FROM room_sessions"
    )
    with engine.connect() as conn:
        for session_id, text, valid in conn.execute(sa.text(query)):
            assert valid, f"{session_id}: json_valid(raw) is false"
            json.loads(text, parse_constant=_reject)


def _reject(name: str) -> Any:
    raise AssertionError(f"raw holds {name}, which is not JSON")
