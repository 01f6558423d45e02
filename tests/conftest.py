"""Fixtures: the stand-in API over loopback, and migrated databases on SQLite and PostgreSQL.

Every database test runs on both backends (`db_url` is parametrised). PostgreSQL is a real
throwaway server started once per session (tests/pgserver.py); when its binaries are absent the
PostgreSQL half is skipped with a loud reason, except under CI, where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pgserver import PgServer, PostgresUnavailable, start_pg_server
from sqlalchemy.engine import Engine

from etl.config import Settings
from etl.db import make_engine, upgrade
from etl.fake_api import FakeSignalWire, generate_sessions

PROJECT = "test-project"
TOKEN = "tok-3f9a1c7e5b2d4086"  # distinctive, so tests can grep output for it


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        server = start_pg_server()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL SKIPPED: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """An empty database on the backend under test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'roomsync.db'}"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)


@pytest.fixture
def migrated_url(db_url: str) -> str:
    upgrade(db_url)
    return db_url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sessions() -> list[dict[str, Any]]:
    return generate_sessions(40, seed=1)


@pytest.fixture
def api(sessions: list[dict[str, Any]]) -> Iterator[FakeSignalWire]:
    with FakeSignalWire(sessions, project_id=PROJECT, token=TOKEN) as server:
        yield server


def make_settings(api: FakeSignalWire, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "base_url": api.base_url,
        "project_id": PROJECT,
        "api_token": TOKEN,
        "database_url": database_url,
        "timeout": 5.0,
        "backoff": 0.01,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(api: FakeSignalWire, migrated_url: str) -> Settings:
    return make_settings(api, migrated_url)


def env_for(api: FakeSignalWire, database_url: str) -> dict[str, str]:
    """Environment for a CLI run against a stand-in API and a database."""
    return {
        "SIGNALWIRE_SPACE": api.base_url,
        "SIGNALWIRE_PROJECT_ID": PROJECT,
        "SIGNALWIRE_API_TOKEN": TOKEN,
        "DATABASE_URL": database_url,
    }


@pytest.fixture
def cli_env(api: FakeSignalWire, migrated_url: str) -> dict[str, str]:
    return env_for(api, migrated_url)
