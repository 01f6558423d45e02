"""Alembic owns the schema: up, down and up again on both backends; models and migrations agree."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from etl.storage.engines import make_engine
from etl.storage.migrate import current_revision, downgrade, head_revision, upgrade
from etl.storage.schema import metadata, room_recordings, room_sessions

ROOT = Path(__file__).resolve().parent.parent


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    assert {"room_sessions", "alembic_version"} <= table_names(db_url)
    downgrade(db_url, "base")
    assert current_revision(db_url) is None
    assert "room_sessions" not in table_names(db_url)
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()


def test_models_and_migrations_agree(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_native_types_and_indexes(migrated_url: str, backend: str) -> None:
    engine = make_engine(migrated_url)
    try:
        inspector = sa.inspect(engine)
        columns = {c["name"]: c for c in inspector.get_columns("room_sessions")}
        indexed = {tuple(i["column_names"]) for i in inspector.get_indexes("room_sessions")}
    finally:
        engine.dispose()
    assert set(columns) == {c.name for c in room_sessions.columns}
    assert {("status",), ("start_time",), ("room_id",)} <= indexed
    if backend == "postgresql":
        kinds = {name: type(c["type"]).__name__ for name, c in columns.items()}
        assert kinds["id"] == "UUID" and kinds["room_id"] == "UUID"
        assert kinds["raw"] == "JSONB"
        assert kinds["created_at"] == "TIMESTAMP" and columns["created_at"]["type"].timezone
        assert kinds["locked"] == "BOOLEAN" and kinds["duration"] == "INTEGER"


def test_alembic_command_line_uses_database_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'via-alembic.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert current_revision(url) == head_revision()


def test_migrations_that_cannot_be_found_are_a_one_line_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install without its migrations (no package etl.migrations, nothing beside etl/)
    says so, exit 3, rather than a traceback."""
    import importlib.resources

    from click.testing import CliRunner

    from etl.cli import main
    from etl.storage import migrate as db

    def no_package(name: str) -> Path:
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(importlib.resources, "files", no_package)
    monkeypatch.setattr(db, "ROOT", tmp_path)
    sqlite3.connect(tmp_path / "x.db").close()  # a database file, with no schema yet
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    for args in (["db", "current"], ["report"], ["db", "upgrade"]):
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 3, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "roomsync's migrations are not on the file system" in lines[0]


def test_sqlite_migrations_are_atomic(tmp_path: Path) -> None:
    """Python's sqlite3 runs DDL outside any transaction unless told otherwise: a migration
    killed halfway would leave half a schema. The migration engine puts DDL in the transaction,
    and Alembic commits once per migration, so a kill leaves the previous revision whole."""
    from etl.storage.engines import make_migration_engine

    engine = make_migration_engine(f"sqlite:///{tmp_path / 'atomic.db'}")
    try:
        with pytest.raises(RuntimeError), engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE half_done (x INTEGER)")
            conn.exec_driver_sql("CREATE INDEX ix_half_done ON half_done (x)")
            raise RuntimeError("killed here")
        assert "half_done" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- 0006: the bill tables

BILL_TABLES = {"room_session_members", "room_recordings", "rooms", "video_charges"}


def test_bill_tables_up_and_down(db_url: str) -> None:
    """0006 adds the four tables on top of 0005 and takes exactly them away again."""
    upgrade(db_url, "0005")
    before = table_names(db_url)
    assert not BILL_TABLES & before
    upgrade(db_url, "0006")
    assert table_names(db_url) == before | BILL_TABLES
    downgrade(db_url, "0005")
    assert current_revision(db_url) == "0005"
    assert table_names(db_url) == before
    upgrade(db_url, "0006")
    assert table_names(db_url) >= BILL_TABLES


def test_bill_tables_native_types_and_indexes(migrated_url: str, backend: str) -> None:
    engine = make_engine(migrated_url)
    try:
        inspector = sa.inspect(engine)
        columns = {
            table: {c["name"]: c for c in inspector.get_columns(table)} for table in BILL_TABLES
        }
        indexed = {
            table: {tuple(i["column_names"]) for i in inspector.get_indexes(table)}
            for table in BILL_TABLES
        }
    finally:
        engine.dispose()
    assert "uri" not in columns["room_recordings"]
    assert ("room_session_id",) in indexed["room_session_members"]
    assert ("room_session_id",) in indexed["room_recordings"]
    assert {("room_session_id",), ("created_at",)} <= indexed["video_charges"]
    assert ("name",) in indexed["rooms"]
    for table in BILL_TABLES:
        assert {"id", "raw", "first_synced_at", "last_synced_at"} <= set(columns[table])
    if backend != "postgresql":
        return

    def kind(table: str, column: str) -> str:
        return type(columns[table][column]["type"]).__name__

    for table in BILL_TABLES:
        assert kind(table, "id") == "UUID" and kind(table, "raw") == "JSONB"
        assert kind(table, "first_synced_at") == "TIMESTAMP"
        assert columns[table]["first_synced_at"]["type"].timezone
    assert kind("room_recordings", "size_in_bytes") == "BIGINT"
    assert kind("room_recordings", "cost_in_dollars") == "DOUBLE_PRECISION"
    assert kind("room_session_members", "room_session_id") == "UUID"
    assert kind("room_session_members", "join_time") == "TIMESTAMP"
    assert kind("rooms", "meta") == "JSONB" and kind("rooms", "fps") == "DOUBLE_PRECISION"
    assert kind("video_charges", "charge_details") == "JSONB"
    assert kind("video_charges", "discarded_at") == "TIMESTAMP"


def test_recording_sizes_beyond_32_bits_round_trip(migrated_url: str) -> None:
    """A recording over 2 GiB (and one near the 64-bit limit) is stored and read back exactly."""
    from datetime import UTC, datetime

    now = datetime(2026, 11, 1, tzinfo=UTC)
    sizes = {"5b7f3c2e-8d11-4e0a-9b6c-2f4a1d3e5c70": 2**31 + 17}
    sizes["7e2a9d41-3c5b-4f86-a0d7-19b8c6e4f213"] = 2**63 - 1
    engine = make_engine(migrated_url)
    try:
        with engine.begin() as conn:
            for recording_id, size in sizes.items():
                conn.execute(
                    room_recordings.insert().values(
                        id=recording_id,
                        room_session_id="c22d24f6-5a47-4597-9a23-c7d01e696b92",
                        size_in_bytes=size,
                        created_at=now,
                        updated_at=now,
                        raw={"id": recording_id, "size_in_bytes": size},
                        first_synced_at=now,
                        last_synced_at=now,
                    )
                )
        with engine.connect() as conn:
            selected = sa.select(room_recordings.c.id, room_recordings.c.size_in_bytes)
            stored = {str(row.id): row.size_in_bytes for row in conn.execute(selected)}
            raw_sizes = {
                row.raw["id"]: row.raw["size_in_bytes"]
                for row in conn.execute(sa.select(room_recordings.c.raw))
            }
    finally:
        engine.dispose()
    assert stored == sizes
    assert raw_sizes == sizes


# --------------------------------------------------------------------------- 0008: fetching state

STATE_TABLES = {"room_session_details", "sync_detail_failures", "sync_cursors"}


def column_names(url: str, table: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_fetch_state_up_and_down(db_url: str) -> None:
    """0008 adds the detail state, the detail failure ledger, the cursors and rooms.deleted_at
    on top of 0006, and takes exactly them away again (the rooms' rows stay)."""
    upgrade(db_url, "0006")
    before = table_names(db_url)
    assert not STATE_TABLES & before
    assert "deleted_at" not in column_names(db_url, "rooms")
    upgrade(db_url, "0008")
    assert table_names(db_url) == before | STATE_TABLES
    assert "deleted_at" in column_names(db_url, "rooms")
    downgrade(db_url, "0006")
    assert current_revision(db_url) == "0006"
    assert table_names(db_url) == before
    assert "deleted_at" not in column_names(db_url, "rooms")
    upgrade(db_url, "0008")
    assert table_names(db_url) >= STATE_TABLES


def test_fetch_state_native_types(migrated_url: str, backend: str) -> None:
    engine = make_engine(migrated_url)
    try:
        inspector = sa.inspect(engine)
        details = {c["name"]: c for c in inspector.get_columns("room_session_details")}
        failures = {c["name"]: c for c in inspector.get_columns("sync_detail_failures")}
        keys = inspector.get_pk_constraint("sync_detail_failures")["constrained_columns"]
        foreign = inspector.get_foreign_keys("sync_detail_failures")
    finally:
        engine.dispose()
    assert set(keys) == {"session_id", "detail"}
    assert foreign[0]["referred_table"] == "sync_runs"
    if backend == "postgresql":
        assert type(details["session_id"]["type"]).__name__ == "UUID"
        assert type(details["members_final"]["type"]).__name__ == "BOOLEAN"
        assert type(failures["failed_at"]["type"]).__name__ == "TIMESTAMP"
