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
from etl.storage.schema import metadata, room_sessions

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
