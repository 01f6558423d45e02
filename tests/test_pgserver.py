"""Tests for the throwaway PostgreSQL helper in ``tests/pgserver.py``."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pgserver
import psycopg
import pytest
from pgserver import PgServer, PostgresUnavailable, find_pg_bin, start_pg_server

SKIP_REASON = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) NOT FOUND on PATH or in "
    "/usr/lib/postgresql/*/bin -- database tests are SKIPPED; install PostgreSQL 15"
)

needs_pg = pytest.mark.skipif(find_pg_bin() is None, reason=SKIP_REASON)


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    if find_pg_bin() is None:
        pytest.skip(SKIP_REASON)
    srv = start_pg_server()
    try:
        yield srv
    finally:
        srv.stop()


def _uid_of_pid(pid: int) -> int:
    return os.stat(f"/proc/{pid}").st_uid


@needs_pg
def test_find_pg_bin_has_all_binaries() -> None:
    bindir = find_pg_bin()
    assert bindir is not None
    for name in ("initdb", "pg_ctl", "postgres"):
        assert os.access(bindir / name, os.X_OK)


def test_find_pg_bin_falls_back_to_usr_lib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    bindir = find_pg_bin()
    if bindir is None:
        assert not list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    else:
        assert str(bindir).startswith("/usr/lib/postgresql/")


def test_unavailable_when_no_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgserver, "find_pg_bin", lambda: None)
    with pytest.raises(PostgresUnavailable, match="initdb"):
        start_pg_server()


def test_create_connect_version_drop(server: PgServer) -> None:
    url = server.create_database("rs_pgserver_check")
    assert url == (
        f"postgresql://roomsync:{server.password}@127.0.0.1:{server.port}/rs_pgserver_check"
    )
    conn = psycopg.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("select version(), current_database()")
            version, dbname = cur.fetchone()
    finally:
        conn.close()
    assert version.startswith("PostgreSQL ")
    assert dbname == "rs_pgserver_check"

    # An open connection must not block the drop (WITH (FORCE)).
    lingering = psycopg.connect(url)
    try:
        server.drop_database("rs_pgserver_check")
    finally:
        lingering.close()
    with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from pg_database where datname = 'rs_pgserver_check'")
        assert cur.fetchone() == (0,)
    server.drop_database("rs_pgserver_check")  # already gone: no error


def test_wrong_password_rejected_and_password_not_leaked(server: PgServer) -> None:
    with pytest.raises(psycopg.OperationalError) as excinfo:
        psycopg.connect(
            host="127.0.0.1",
            port=server.port,
            user=server.user,
            password="definitely-wrong",
            dbname="postgres",
            connect_timeout=5,
        )
    assert "password authentication failed" in str(excinfo.value)
    assert server.password not in str(excinfo.value)
    assert server.password not in repr(server)
    assert server.password not in server.log_file.read_text()


def test_listens_on_loopback_only(server: PgServer) -> None:
    with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
        cur.execute("select current_setting('listen_addresses'), current_setting('fsync')")
        assert cur.fetchone() == ("127.0.0.1", "off")


def test_server_process_not_root(server: PgServer) -> None:
    with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
        cur.execute("select pg_backend_pid(), current_setting('data_directory')")
        backend_pid, data_directory = cur.fetchone()
        backend_uid = _uid_of_pid(backend_pid)  # while the backend still serves us
    assert Path(data_directory) == server.datadir
    postmaster_pid = int((server.datadir / "postmaster.pid").read_text().splitlines()[0])
    if os.geteuid() == 0:
        assert os.stat(server.datadir).st_uid != 0
        assert _uid_of_pid(postmaster_pid) != 0
        assert backend_uid != 0
    else:
        assert _uid_of_pid(postmaster_pid) == os.geteuid()


@needs_pg
def test_lifecycle_port_retry_and_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    # First offered port is already taken: start_pg_server must retry with another one.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        busy_port = busy.getsockname()[1]
        ports = iter([busy_port])
        real_free_port = pgserver._free_port
        monkeypatch.setattr(pgserver, "_free_port", lambda: next(ports, None) or real_free_port())
        srv = start_pg_server()
    try:
        assert srv.port != busy_port
        assert srv.base_dir.parent == Path("/tmp")
        assert srv.base_dir.name.startswith("roomsync-pg-")
        assert not (srv.base_dir / "pwfile").exists()
        with contextlib.closing(srv.connect()) as conn:
            assert conn.info.server_version >= 150000
    finally:
        srv.stop()
    assert not srv.base_dir.exists()
    srv.stop()  # idempotent, must not raise
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(srv.url(), connect_timeout=2)
