"""Throwaway PostgreSQL server for the test suite.

``start_pg_server()`` creates a fresh cluster with ``initdb`` in a private temp directory under
``/tmp``, starts it with ``pg_ctl`` on a free loopback port and returns a :class:`PgServer`
handle.  The caller (a session-scoped pytest fixture) owns the handle and must call
:meth:`PgServer.stop`, which shuts the server down and removes the temp directory.

PostgreSQL refuses to run as root, so when the tests run as root the cluster is created and
started as the ``postgres`` system user (via ``runuser``, ``setpriv`` or ``su``).  Nothing is
registered globally (no atexit hooks, no signal handlers).

The cluster is tuned for speed, not durability (``fsync=off`` etc.): it is thrown away at the
end of the session.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

__all__ = ["PgServer", "PostgresUnavailable", "find_pg_bin", "start_pg_server"]

#: Binaries that must all live in the same directory.
PG_BINARIES = ("initdb", "pg_ctl", "postgres")
#: Superuser created by initdb; tests connect as this role.
DB_SUPERUSER = "roomsync"
#: Unprivileged system user the server runs as when the tests run as root.
UNPRIVILEGED_USER = "postgres"

INITDB_TIMEOUT = 120.0
START_TIMEOUT = 60  # pg_ctl -t; the subprocess itself gets a little more
STOP_TIMEOUT = 30
CONNECT_TIMEOUT = 30.0
START_ATTEMPTS = 3  # retries only for a lost race on the chosen port
LOG_TAIL_LINES = 40


class PostgresUnavailable(Exception):
    """PostgreSQL cannot be run here (binaries absent, no unprivileged user when root).

    The caller should skip the database tests loudly, using this exception's message.
    """


def _has_pg_binaries(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in PG_BINARIES)


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name  # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (-1,)


def find_pg_bin() -> Path | None:
    """Return the directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or ``None``.

    ``PATH`` is searched first (in order); then ``/usr/lib/postgresql/*/bin``, highest version
    first.
    """
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and _has_pg_binaries(Path(entry)):
            return Path(entry)
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if _has_pg_binaries(Path(candidate)):
            return Path(candidate)
    return None


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """The current environment minus libpq ``PG*`` variables that could redirect commands."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"  # predictable (English) tool messages; always-present locale
    return env


def _as_user(user: str | None, cmd: Sequence[str]) -> list[str]:
    """``cmd`` wrapped to run as system user ``user`` (``None``: unchanged, current user)."""
    if user is None:
        return list(cmd)
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *cmd]
    if shutil.which("setpriv"):
        entry = pwd.getpwnam(user)
        return [
            "setpriv",
            f"--reuid={entry.pw_uid}",
            f"--regid={entry.pw_gid}",
            "--init-groups",
            "--",
            *cmd,
        ]
    if shutil.which("su"):
        return ["su", "-s", "/bin/sh", user, "-c", shlex.join(cmd)]
    raise PostgresUnavailable(
        f"running as root, but none of runuser/setpriv/su is available to switch to {user!r}"
    )


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<could not read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


@dataclass
class PgServer:
    """Handle on a running throwaway PostgreSQL server.

    ``password`` is excluded from ``repr`` so that the handle can be printed in test output.
    """

    datadir: Path
    port: int
    user: str
    password: str = field(repr=False)
    socket_dir: Path
    base_dir: Path
    bindir: Path
    log_file: Path
    host: str = "127.0.0.1"
    os_user: str | None = None  # system user the server runs as; None = current user
    _stopped: bool = field(default=False, init=False, repr=False)

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy/libpq URL for ``dbname`` (plain ``postgresql://``: psycopg driver)."""
        return (
            f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{quote(dbname, safe='')}"
        )

    def connect(self, dbname: str = "postgres", **kwargs: object) -> psycopg.Connection:
        """Open a psycopg connection to ``dbname`` as the superuser (caller closes it)."""
        params: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": dbname,
            "connect_timeout": 5,
        }
        params.update(kwargs)
        return psycopg.connect(**params)

    def _admin(self, statement: sql.Composable) -> None:
        conn = self.connect("postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def create_database(self, name: str, template: str | None = None) -> str:
        """``CREATE DATABASE name`` (a copy of ``template`` when given) and return its URL."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        self._admin(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` (if it exists), terminating any open connections to it."""
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _pg_ctl_stop(self, mode: str) -> bool:
        cmd = [
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-m",
            mode,
            "-w",
            "-t",
            str(STOP_TIMEOUT),
            "stop",
        ]
        try:
            result = subprocess.run(
                _as_user(self.os_user, cmd),
                cwd=self.base_dir,
                env=_clean_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=STOP_TIMEOUT + 15,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return result.returncode == 0

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove the temp directory.

        Idempotent and never raises: falls back to an immediate shutdown, then SIGKILL.
        """
        if self._stopped:
            return
        self._stopped = True
        if (self.datadir / "postmaster.pid").exists() and not self._pg_ctl_stop("fast"):
            self._pg_ctl_stop("immediate")
        pid = self._postmaster_pid()
        if pid is not None and (self.datadir / "postmaster.pid").exists():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.base_dir, ignore_errors=True)


def _unprivileged_user() -> str | None:
    """System user to run PostgreSQL as: ``None`` (current user) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root and there is no {UNPRIVILEGED_USER!r} system user; PostgreSQL "
            "refuses to run as root. Create that user or run the tests as a normal user."
        ) from None
    return UNPRIVILEGED_USER


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _run(
    cmd: list[str], *, what: str, cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` and raise RuntimeError (with its output) on failure or timeout."""
    try:
        result = subprocess.run(
            cmd,
            cwd=cwd,
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{what} timed out after {timeout:.0f}s: {shlex.join(cmd)}") from exc
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {result.returncode}): {shlex.join(cmd)}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def _initdb(bindir: Path, datadir: Path, base: Path, password: str, os_user: str | None) -> None:
    pwfile = base / "pwfile"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    _chown(pwfile, os_user)
    try:
        base_cmd = [
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            DB_SUPERUSER,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
        ]
        try:
            _run(
                _as_user(os_user, [*base_cmd, "--locale=C.UTF-8"]),
                what="initdb",
                cwd=base,
                timeout=INITDB_TIMEOUT,
            )
        except RuntimeError:
            # C.UTF-8 not available on this system: retry with the plain C locale.
            shutil.rmtree(datadir, ignore_errors=True)
            _run(
                _as_user(os_user, [*base_cmd, "--no-locale"]),
                what="initdb",
                cwd=base,
                timeout=INITDB_TIMEOUT,
            )
    finally:
        pwfile.unlink(missing_ok=True)


def _wait_for_connection(server: PgServer, timeout: float = CONNECT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            server.connect("postgres", connect_timeout=2).close()
            return
        except psycopg.OperationalError as exc:
            last_error = exc
            time.sleep(0.2)
    raise RuntimeError(
        f"PostgreSQL did not accept connections within {timeout:.0f}s: {last_error}\n"
        f"server log tail:\n{_tail(server.log_file)}"
    )


def _start(server: PgServer, *, may_retry: bool) -> bool:
    """Start the server with pg_ctl.

    Returns False on a lost race for the chosen port when ``may_retry`` (caller picks another
    port); any other failure raises RuntimeError including the tail of the server log.
    """
    options = (
        f"-c listen_addresses=127.0.0.1 -p {server.port} -k {server.socket_dir} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        "-c max_connections=100"
    )
    cmd = [
        str(server.bindir / "pg_ctl"),
        "-D",
        str(server.datadir),
        "-l",
        str(server.log_file),
        "-w",
        "-t",
        str(START_TIMEOUT),
        "-o",
        options,
        "start",
    ]
    try:
        _run(
            _as_user(server.os_user, cmd),
            what="pg_ctl start",
            cwd=server.base_dir,
            timeout=START_TIMEOUT + 30,
        )
    except RuntimeError as exc:
        log_tail = _tail(server.log_file)
        port_taken = "could not bind" in log_tail or "could not create any TCP/IP" in log_tail
        if may_retry and port_taken:
            server.log_file.unlink(missing_ok=True)
            return False
        raise RuntimeError(f"{exc}\nserver log tail ({server.log_file}):\n{log_tail}") from exc
    return True


def start_pg_server() -> PgServer:
    """Create and start a throwaway PostgreSQL cluster; the caller must call ``stop()``.

    Raises :class:`PostgresUnavailable` when the server binaries (or, as root, an unprivileged
    user to run them as) are missing, and RuntimeError when the server fails to start.
    """
    bindir = find_pg_bin()
    if bindir is None:
        raise PostgresUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in "
            "/usr/lib/postgresql/*/bin; install the PostgreSQL 15 server package"
        )
    os_user = _unprivileged_user()

    base = Path(tempfile.mkdtemp(prefix="roomsync-pg-", dir="/tmp"))
    server = PgServer(
        datadir=base / "data",
        port=0,
        user=DB_SUPERUSER,
        password=secrets.token_urlsafe(24),
        socket_dir=base / "sock",
        base_dir=base,
        bindir=bindir,
        log_file=base / "server.log",
        os_user=os_user,
    )
    try:
        server.socket_dir.mkdir(mode=0o700)
        _chown(server.socket_dir, os_user)
        _chown(base, os_user)
        _initdb(bindir, server.datadir, base, server.password, os_user)
        for attempt in range(1, START_ATTEMPTS + 1):
            server.port = _free_port()
            if _start(server, may_retry=attempt < START_ATTEMPTS):
                break
        _wait_for_connection(server)
    except BaseException:
        server.stop()
        raise
    return server
