"""Issue 13, this machine: the sync lock cannot be dodged through a symlink nor outlived by its
run, and the commands that only read work on read-only media without creating anything."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import PROJECT, TOKEN, env_for
from sqlalchemy.engine import Engine

from etl.cli import main
from etl.fake_api import FakeSignalWire, generate_sessions
from etl.records import parse_session
from etl.storage.engines import make_engine
from etl.storage.lock import run_lock
from etl.storage.migrate import head_revision, upgrade
from etl.storage.schema import room_sessions, sync_runs
from etl.storage.sessions import upsert_sessions


def python_env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra}


# --------------------------------------------------------------------------- SQLite lock


def test_a_symlinked_database_path_finds_the_same_lock(tmp_path: Path) -> None:
    real_dir = tmp_path / "data"
    real_dir.mkdir()
    (real_dir / "roomsync.db").touch()
    (tmp_path / "link.db").symlink_to(real_dir / "roomsync.db")
    (tmp_path / "linkdir").symlink_to(real_dir, target_is_directory=True)
    names = [real_dir / "roomsync.db", tmp_path / "link.db", tmp_path / "linkdir" / "roomsync.db"]
    engines = [make_engine(f"sqlite:///{name}") for name in names]
    try:
        with run_lock(engines[0]) as first:
            assert first
            for other in engines[1:]:
                with run_lock(other) as second:
                    assert not second
        with run_lock(engines[1]) as again:  # released: any name takes it
            assert again
    finally:
        for engine in engines:
            engine.dispose()


# --------------------------------------------------------------------------- PostgreSQL lock


def _lock_backend(engine: Engine) -> int | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted LIMIT 1")
        ).scalar()


def _stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(room_sessions)).scalar_one()


@pytest.mark.parametrize("backend", ["postgresql"])  # advisory locks live on connections
def test_a_sync_whose_lock_connection_dies_stops(engine: Engine, migrated_url: str) -> None:
    """The lock's backend is terminated mid-run: the run stops at its next batch (exit 3, one
    line), its ledger row says why, and a second sync can then run to the end."""
    sessions = generate_sessions(200, seed=31)
    with FakeSignalWire(sessions, project_id=PROJECT, token=TOKEN, latency=0.05) as api:
        args = ["sync", "--page-size", "5", "--batch-size", "5", "--concurrency", "1"]
        process = subprocess.Popen(
            [sys.executable, "-m", "etl", *args],
            env=python_env(**env_for(api, migrated_url)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while (pid := _lock_backend(engine)) is None or _stored(engine) < 5:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the sync took no lock or wrote nothing"
                time.sleep(0.02)
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            at_termination = _stored(engine)
            _, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 3, stderr
        errors = [line for line in stderr.splitlines() if "error" in line.lower()]
        assert len(errors) == 1 and "sync lock" in errors[0] and "Traceback" not in stderr
        # it stopped: at most the batch being written when the lock went finished
        assert _stored(engine) <= at_termination + 5 < len(sessions)
        with engine.connect() as conn:
            outcome, error = conn.execute(
                sa.select(sync_runs.c.outcome, sync_runs.c.error).order_by(sync_runs.c.id)
            ).all()[-1]
        assert outcome == "error" and "sync lock" in error

        second = subprocess.run(
            [sys.executable, "-m", "etl", "sync", "--json"],
            env=python_env(**env_for(api, migrated_url)),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert second.returncode == 0, second.stderr
    assert _stored(engine) == len(sessions)


# --------------------------------------------------------------------------- read-only use


def _filled_database(directory: Path) -> str:
    url = f"sqlite:///{directory / 'room_sessions.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        payloads = generate_sessions(10, seed=3)
        upsert_sessions(engine, [parse_session(p, p["id"]) for p in payloads], datetime.now(UTC))
    finally:
        engine.dispose()
    return url


def _read_only_mount_works(tmp_path: Path) -> str | None:
    """None when `unshare -m` can bind-mount a directory read-only here, else why not."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare or mount is missing"
    probe = tmp_path / "probe"
    probe.mkdir()
    script = f"mount --bind {probe} {probe} && mount -o remount,ro,bind {probe} && true"
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, timeout=30)
    probe.rmdir()
    return None if done.returncode == 0 else done.stderr.decode(errors="replace").strip()


def _on_read_only_media(
    directory: Path, args: list[str], **env: str
) -> subprocess.CompletedProcess[str]:
    """Run roomsync with `directory` remounted read-only, in a mount namespace of its own
    (the mount ends with the process; nothing outside it sees the change)."""
    command = " ".join([sys.executable, "-m", "etl", *args])
    script = (
        f"mount --bind {directory} {directory} && mount -o remount,ro,bind {directory} && "
        f"touch {directory}/probe 2>/dev/null && echo WRITABLE >&2 && exit 99; exec {command}"
    )
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        env=python_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=directory.parent,
    )


def test_report_and_db_current_work_on_read_only_media(tmp_path: Path) -> None:
    why_not = _read_only_mount_works(tmp_path)
    if why_not is not None:
        if os.environ.get("CI"):
            pytest.fail(f"read-only bind mounts are needed in CI: {why_not}")
        pytest.skip(f"read-only bind mount SKIPPED: {why_not}")
    media = tmp_path / "media"
    media.mkdir()
    url = _filled_database(media)
    before = sorted(p.name for p in media.iterdir())

    done = _on_read_only_media(media, ["report", "--database-url", url, "--format", "json"])
    assert done.returncode == 0, done.stderr
    assert sum(row["sessions"] for row in json.loads(done.stdout)) == 10

    done = _on_read_only_media(media, ["db", "current", "--database-url", url])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{head_revision()} (head)"

    # and a command that writes says so in one line (exit 3), not a traceback
    sid = str(uuid.uuid4())
    credentials = {"SIGNALWIRE_PROJECT_ID": "p", "SIGNALWIRE_API_TOKEN": "t"}
    fetch = ["fetch", sid, "--database-url", url, "--space", "http://127.0.0.1:9"]
    done = _on_read_only_media(media, fetch, **credentials)
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert sorted(p.name for p in media.iterdir()) == before


def test_read_only_commands_never_create_a_database(tmp_path: Path) -> None:
    """Without DATABASE_URL the default is ./room_sessions.db; with none there, `report` and
    `db current` say so (exit 3) and leave no empty database behind."""
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        for args in (["report"], ["db", "current"], ["report", "--database-url", "sqlite:///x.db"]):
            result = CliRunner().invoke(
                main, args, env={"DATABASE_URL": None}, catch_exceptions=False
            )
            assert result.exit_code == 3, result.output
            lines = result.stderr.splitlines()
            assert len(lines) == 1 and "no database at" in lines[0]
            assert list(tmp_path.iterdir()) == []
    finally:
        os.chdir(previous)
