"""`roomsync check`: settings, database and credentials; exit 0 or 3; writes nothing (no ledger
row, no file created); both backends, real stand-in API over loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import TOKEN, Invoke
from snapshots import table_contents

from etl.cli import main
from etl.fake_api import LIST_PATH, FakeSignalWire


def checks_of(result: Result) -> dict[str, dict[str, Any]]:
    body = json.loads(result.stdout)
    return {c["name"]: c for c in body["checks"]}


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_all_good_is_exit_0_with_one_small_list_request(
    cli_env: dict[str, str], api: FakeSignalWire, migrated_url: str, invoke: Invoke
) -> None:
    result = invoke(["check", "--json", "--with", "none"], cli_env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["ok"] is True and body["exit_code"] == 0
    assert [c["name"] for c in body["checks"]] == ["settings", "database", "credentials"]
    assert all(c["ok"] for c in body["checks"])
    assert api.requests[LIST_PATH] == 1 and api.total_requests == 1
    text = invoke(["check", "--with", "none"], cli_env)
    assert text.exit_code == 0 and "credentials  ok" in text.stdout


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_every_missing_setting_named_at_once(
    cli_env: dict[str, str], api: FakeSignalWire, invoke: Invoke
) -> None:
    env = cli_env | {"SIGNALWIRE_SPACE": "", "SIGNALWIRE_API_TOKEN": ""}
    result = invoke(["check", "--json"], env)
    assert result.exit_code == 3
    checks = checks_of(result)
    assert checks["settings"]["ok"] is False
    assert checks["settings"]["detail"] == "not set: SIGNALWIRE_SPACE, SIGNALWIRE_API_TOKEN"
    assert checks["database"]["ok"] is True  # still checked
    assert checks["credentials"]["ok"] is None  # skipped
    assert api.total_requests == 0
    assert json.loads(result.stdout)["exit_code"] == 3


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_malformed_space_and_refused_token(cli_env: dict[str, str], invoke: Invoke) -> None:
    http = invoke(["check", "--json"], cli_env | {"SIGNALWIRE_SPACE": "http://example.com"})
    assert http.exit_code == 3 and "use https" in checks_of(http)["settings"]["detail"]
    refused = invoke(["check", "--json"], cli_env | {"SIGNALWIRE_API_TOKEN": "not-it-123"})
    assert refused.exit_code == 3
    assert "refused the credentials" in checks_of(refused)["credentials"]["detail"]
    assert "not-it-123" not in refused.output and TOKEN not in refused.output


def test_unmigrated_database_is_reported(
    cli_env: dict[str, str], migrated_url: str, invoke: Invoke
) -> None:
    from etl.storage.migrate import downgrade

    downgrade(migrated_url, "0003")
    result = invoke(["check", "--json"], cli_env)
    assert result.exit_code == 3
    assert "roomsync db upgrade" in checks_of(result)["database"]["detail"]
    assert checks_of(result)["credentials"]["ok"] is True


def test_check_writes_nothing(cli_env: dict[str, str], migrated_url: str, invoke: Invoke) -> None:
    assert invoke(["sync"], cli_env).exit_code == 0  # some rows and a ledger row to compare
    before = table_contents(migrated_url)
    for env in (cli_env, cli_env | {"SIGNALWIRE_API_TOKEN": "wrong"}):
        invoke(["check"], env)
    assert table_contents(migrated_url) == before


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_check_never_creates_a_sqlite_file(
    api: FakeSignalWire, cli_env: dict[str, str], tmp_path: Path, invoke: Invoke
) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    env = cli_env | {"DATABASE_URL": f"sqlite:///{folder / 'nope.db'}"}
    result = invoke(["check", "--json"], env)
    assert result.exit_code == 3 and "no database at" in checks_of(result)["database"]["detail"]
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_a_database_url_with_a_non_numeric_port_is_one_line(cli_env: dict[str, str]) -> None:
    url = "postgresql://u:s3cretpw@db.example:abc/x"
    result = CliRunner().invoke(main, ["check", "--database-url", url], env=cli_env)
    assert (
        result.exit_code == 3
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    assert "Traceback" not in result.output and "s3cretpw" not in result.output
    assert "DATABASE_URL is not a valid SQLAlchemy URL" in result.output
