"""Database URLs as hosting platforms write them: `postgres://` works like `postgresql://`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import env_for
from pgserver import PgServer

from etl.cli import main
from etl.config import database_url, normalize_database_url
from etl.fake_api import FakeSignalWire
from etl.storage.migrate import current_revision, head_revision


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/app", "postgresql://u:p@db:5432/app"),
        ("POSTGRES://u@db/app?sslmode=require", "postgresql://u@db/app?sslmode=require"),
        ("postgres+psycopg://u@db/app", "postgresql+psycopg://u@db/app"),
        ("postgresql://u@db/app", "postgresql://u@db/app"),
        ("sqlite:///postgres://not-a-scheme.db", "sqlite:///postgres://not-a-scheme.db"),
        ("postgresfoo://u@db/app", "postgresfoo://u@db/app"),
    ],
)
def test_postgres_scheme_is_spelled_postgresql(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_database_url_from_the_environment_is_normalised() -> None:
    assert database_url(env={"DATABASE_URL": "postgres://u@db/app"}) == "postgresql://u@db/app"
    flag = {"database_url": "postgres://u@db/flag"}
    assert database_url(flag, env={}) == "postgresql://u@db/flag"


@pytest.fixture
def postgres_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh PostgreSQL database, addressed the way Heroku-like platforms write it."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    try:
        assert url.startswith("postgresql://")
        yield "postgres://" + url.removeprefix("postgresql://")
    finally:
        pg_server.drop_database(name)


def test_cli_runs_on_a_postgres_scheme_url(
    postgres_url: str, api: FakeSignalWire, sessions: list[dict[str, Any]]
) -> None:
    env = env_for(api, postgres_url)
    runner = CliRunner()
    up = runner.invoke(main, ["db", "upgrade"], env=env, catch_exceptions=False)
    assert up.exit_code == 0, up.output
    assert current_revision(postgres_url) == head_revision()  # the library takes it as well
    fetched = runner.invoke(
        main, ["fetch", sessions[0]["id"], "--json"], env=env, catch_exceptions=False
    )
    assert fetched.exit_code == 0, fetched.output
    assert '"inserted": 1' in fetched.stdout
    report = runner.invoke(main, ["report", "--by", "status", "--format", "json"], env=env)
    assert report.exit_code == 0, report.output
    assert sum(row["sessions"] for row in json.loads(report.stdout)) == 1
