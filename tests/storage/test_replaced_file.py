"""Issue 22, defect 5: a SQLite file replaced under a running sync (a backup restored, a deploy
that swaps the file) stops the run with exit 3 and one line, before anything is written through
the old file's state; the new file stays byte for byte as it was put there, and the old one is
intact with what the run stored before. A real process, a real os.replace. SQLite only: a
PostgreSQL database has no file to swap."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from hostile_api import LIST, Gate, HostileAPI, Normal
from roomsync_proc import Roomsync, env_for_url

from etl.fake_api import generate_sessions
from etl.storage.migrate import upgrade


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table_counts(path: Path) -> tuple[str, int, int]:
    """(integrity_check, sessions, runs) of a closed SQLite file, opened read-only."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        sessions = conn.execute("SELECT count(*) FROM room_sessions").fetchone()[0]
        runs = conn.execute("SELECT count(*) FROM sync_runs").fetchone()[0]
    conn.close()
    return str(integrity), int(sessions), int(runs)


@pytest.mark.timeout(90)
def test_a_database_file_swapped_mid_sync_stops_it_and_both_files_stay_whole(
    hostile_api: HostileAPI, tmp_path: Path
) -> None:
    hostile_api.set_sessions(generate_sessions(30, seed=227))
    release = threading.Event()
    held = Gate(release)
    hostile_api.queue(LIST, Normal(), held)  # page 1 is stored; page 2 waits for the swap
    database = tmp_path / "roomsync.db"
    upgrade(f"sqlite:///{database}")
    backup = tmp_path / "backup.db"  # what a restore puts in place: a whole, closed file
    shutil.copyfile(database, backup)
    backup_digest = digest(backup)
    old = tmp_path / "old.db"
    env = env_for_url(hostile_api.base_url, f"sqlite:///{database}")
    sync = Roomsync(["sync", "--json", "--page-size", "10", "--batch-size", "10"], env)
    try:
        assert held.arrived.wait(30), "the sync never asked for page 2"
        os.link(database, old)  # keep the old file to look at afterwards
        os.replace(backup, database)
    finally:
        release.set()
    result = sync.finish(timeout=60)
    assert result.returncode == 3, result.stderr[-3000:]
    line = result.one_line_error()
    assert "now names another file" in line and str(database) in line
    assert "malformed" not in result.stderr
    # the new file: not one byte written into it, and whole
    assert digest(database) == backup_digest
    assert not Path(f"{database}-wal").exists() or Path(f"{database}-wal").stat().st_size == 0
    assert table_counts(database) == ("ok", 0, 0)
    # the old file: whole, with page 1 and the run that stored it
    integrity, sessions, runs = table_counts(old)
    assert integrity == "ok" and sessions == 10 and runs == 1
    # and the next sync works on the new file, from scratch
    again = Roomsync(["sync", "--json"], env).finish(timeout=60)
    assert again.returncode == 0, again.stderr[-3000:]
    assert table_counts(database) == ("ok", 30, 1)
