"""Issue 22, defects 6 and 7a: the SQLite sync lock is keyed by the database file's identity
(device + inode), so two hard-link names of one file cannot run two syncs; a lock file that
cannot be opened is one line and exit 3, never a traceback. Real processes, real files."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from hostile_api import LIST, Gate, HostileAPI
from roomsync_proc import Roomsync, env_for_url, roomsync, runs

from etl.fake_api import generate_sessions
from etl.storage.engines import make_engine
from etl.storage.lock import run_lock
from etl.storage.migrate import upgrade


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "roomsync.db"
    path.parent.mkdir()
    upgrade(f"sqlite:///{path}")
    return path


def identity_lock(path: Path) -> Path:
    st = os.stat(path)
    return path.parent / f".roomsync-{st.st_dev:x}-{st.st_ino:x}.sync-lock"


def test_hard_links_of_one_database_share_the_lock_in_process(database: Path) -> None:
    other = database.parent / "alias.db"
    os.link(database, other)
    engines = [make_engine(f"sqlite:///{name}") for name in (database, other)]
    try:
        with run_lock(engines[0]) as first:
            assert first
            with run_lock(engines[1]) as second:
                assert not second
        with run_lock(engines[1]) as again:  # released: either name takes it
            assert again
    finally:
        for engine in engines:
            engine.dispose()


@pytest.mark.timeout(90)
def test_a_sync_through_a_hard_link_skips_while_one_runs(
    hostile_api: HostileAPI, database: Path
) -> None:
    hostile_api.set_sessions(generate_sessions(20, seed=225))
    release = threading.Event()
    held = Gate(release)
    hostile_api.queue(LIST, held)  # the first sync's first list page waits for the test
    alias = database.parent / "alias.db"
    os.link(database, alias)
    first = Roomsync(["sync", "--json"], env_for_url(hostile_api.base_url, f"sqlite:///{database}"))
    try:
        assert held.arrived.wait(30), "the first sync never asked for the list"
        second = roomsync(
            ["sync", "--json"], env_for_url(hostile_api.base_url, f"sqlite:///{alias}")
        )
    finally:
        release.set()
    done = first.finish(timeout=60)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.summary().get("run_skipped") is True, "two syncs ran on one database"
    assert done.returncode == 0, done.stderr[-2000:]
    engine = make_engine(f"sqlite:///{database}")
    try:
        ledger = runs(engine)
    finally:
        engine.dispose()
    assert [(r["command"], r["outcome"]) for r in ledger] == [("sync", "ok")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("which", ["name", "identity"])
def test_a_lock_file_that_cannot_be_opened_is_one_line_exit_3(
    hostile_api: HostileAPI, database: Path, which: str
) -> None:
    hostile_api.set_sessions(generate_sessions(5, seed=226))
    in_the_way = Path(f"{database}.sync-lock") if which == "name" else identity_lock(database)
    in_the_way.mkdir()  # a directory where the lock file should be
    env = env_for_url(hostile_api.base_url, f"sqlite:///{database}")
    result = roomsync(["sync", "--json"], env)
    assert result.returncode == 3, result.stderr[-2000:]
    line = result.one_line_error()
    assert "sync lock file" in line and str(in_the_way) in line
    assert hostile_api.requests == []  # stopped before the run began
