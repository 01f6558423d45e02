"""Engines (etl/storage/engines.py): the writing, dry-run and read-only engines on both backends;
a URL parsed once. (Errors mapped once: test_dberrors.py; `Store.open`: test_store.py.)"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from pgserver import PgServer

from etl.errors import ConfigError, DatabaseError
from etl.storage.engines import is_valid_url, make_engine, parse_url, readonly_engine
from etl.storage.schema import sync_runs

INSERT_RUN = sa.insert(sync_runs).values(
    command="fetch", started_at=datetime(2026, 11, 1, tzinfo=UTC), outcome="running"
)


def pragma(engine: sa.Engine, name: str) -> object:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_a_url_is_parsed_once_with_the_postgres_scheme_taken_as_postgresql() -> None:
    assert parse_url("postgres://u@db/app").get_backend_name() == "postgresql"
    assert is_valid_url("sqlite:///x.db") and not is_valid_url("not a url")
    with pytest.raises(ConfigError) as refused:
        parse_url("postgresql://u:hunter2@db:port/app")
    assert "hunter2" not in str(refused.value) and "\n" not in str(refused.value)


def test_the_writing_engine_turns_on_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        assert pragma(engine, "journal_mode") == "wal"
        assert pragma(engine, "foreign_keys") == 1
    finally:
        engine.dispose()


def test_the_dry_run_engine_creates_no_file_and_leaves_the_journal_alone(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(DatabaseError, match="no database at"):
        make_engine(f"sqlite:///{missing}", keep_file_as_is=True)
    assert not missing.exists()
    existing = tmp_path / "plain.db"
    sqlite3.connect(existing).close()  # journal mode `delete`, as sqlite3 makes it
    engine = make_engine(f"sqlite:///{existing}", keep_file_as_is=True)
    try:
        assert pragma(engine, "journal_mode") == "delete"
        assert pragma(engine, "foreign_keys") == 1
    finally:
        engine.dispose()


def test_the_read_only_engine_reads_and_cannot_write(migrated_url: str) -> None:
    engine = readonly_engine(migrated_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(sync_runs)).scalar() == 0
        with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
            conn.execute(INSERT_RUN)
    finally:
        engine.dispose()


def test_the_read_only_engine_never_creates_a_sqlite_file(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    with pytest.raises(DatabaseError, match="no database at"):
        readonly_engine(f"sqlite:///{missing}")
    assert not missing.exists()


def test_a_postgres_scheme_url_is_read_only_too(pg_server: PgServer) -> None:
    """`postgres://` (as platforms inject it) gets the read-only engine, not a writing one."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    try:
        writer = make_engine(url)
        with writer.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x integer)")
        writer.dispose()
        engine = readonly_engine("postgres://" + url.removeprefix("postgresql://"))
        try:
            with pytest.raises(sa.exc.DBAPIError, match="read-only"), engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        finally:
            engine.dispose()
    finally:
        pg_server.drop_database(name)
