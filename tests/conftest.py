"""Fixtures: the stand-in API over loopback, and migrated databases on SQLite and PostgreSQL.

Every database test runs on both backends (`db_url` is parametrised). PostgreSQL is a real
throwaway server started once per session (tests/pgserver.py); when its binaries are absent the
PostgreSQL half is skipped with a loud reason, except under CI, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from pgserver import PgServer, PostgresUnavailable, start_pg_server
from sqlalchemy.engine import Engine

from etl.cli import main
from etl.config import Settings
from etl.fake_api import FakeSignalWire, generate_sessions
from etl.storage.engines import make_engine
from etl.storage.migrate import upgrade

PROJECT = "test-project"
TOKEN = "tok-3f9a1c7e5b2d4086"  # distinctive, so tests can grep output for it

# A `@pytest.mark.timeout(N)` names how long the test takes at most on an idle two-core machine,
# with room; it is there to end a hang, never to judge speed. On a loaded machine (CI next to
# other work, the suite with CPU-bound processes competing) a test of many subprocesses runs
# several times slower, so every such bound is stretched by this factor (the ini default,
# pyproject.toml, is already stretched). A hang still ends, only later.
TIMEOUT_SCALE = 5


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("timeout")
        if marker is not None and marker.args:
            item.add_marker(pytest.mark.timeout(marker.args[0] * TIMEOUT_SCALE), append=False)


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
    yield from _pg_database(request.getfixturevalue("pg_server"))


def _pg_database(server: PgServer, template: str | None = None) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name, template=template)
    try:
        yield url
    finally:
        server.drop_database(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file migrated to head once per test session, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    upgrade(f"sqlite:///{path}")
    return str(path)


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer) -> str:
    """A PostgreSQL database migrated to head once per test session; each test gets a copy
    (CREATE DATABASE ... TEMPLATE), which costs a file copy instead of a migration run."""
    name = "roomsync_template"
    url = pg_server.create_database(name)
    upgrade(url)
    make_engine(url).dispose()
    return name


@pytest.fixture
def migrated_url(backend: str, request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A database at head on the backend under test: a fresh copy of a migrated template.

    The migrations themselves run for real once per session per backend (and in
    tests/test_migrations.py for every step); tests that move the schema use `db_url`.
    """
    if backend == "sqlite":
        path = tmp_path / "roomsync.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    yield from _pg_database(server, template=request.getfixturevalue("pg_template"))


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


@pytest.fixture
def hostile_api() -> Iterator[Any]:
    """The hostile stand-in (tests/hostile_api.py) on loopback, with the test credentials;
    stopped (every connection hung up) after the test."""
    from hostile_api import HostileAPI

    with HostileAPI(project_id=PROJECT, token=TOKEN) as server:
        yield server


# --------------------------------------------------------------------------- the CLI, the rows

#: invoke(args, env=None, stdin=None) -> the click Result of `roomsync ARGS` run in-process
Invoke = Callable[..., Result]


def run_roomsync(
    args: list[str], env: dict[str, str] | None = None, stdin: str | None = None
) -> Result:
    """`roomsync ARGS` in-process with `env` added to the environment; an exception escaping
    the CLI (a traceback a user would see) fails the test instead of being hidden."""
    return CliRunner().invoke(main, args, env=env or {}, input=stdin, catch_exceptions=False)


@pytest.fixture
def invoke() -> Invoke:
    """`roomsync` run in-process: see `run_roomsync`."""
    return run_roomsync


def table_rows(
    where: Engine | str, table: sa.Table, *, order_by: str | None = None
) -> list[dict[str, Any]]:
    """Every row of `table` as a dict, read from an engine or a database URL (ordered by the
    column `order_by` when given)."""
    engine = where if isinstance(where, Engine) else make_engine(where)
    try:
        with engine.connect() as conn:
            query = sa.select(table)
            if order_by is not None:
                query = query.order_by(table.c[order_by])
            return [dict(row._mapping) for row in conn.execute(query)]
    finally:
        if not isinstance(where, Engine):
            engine.dispose()
