"""`--dry-run` for fetch, backfill and sync: the counts a real run would give, and nothing
written (no rows, no ledger rows, no failures, no relist entries); both backends."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from click.testing import Result
from conftest import Invoke
from snapshots import table_contents
from sqlalchemy.engine import Engine

from etl.fake_api import FakeSignalWire
from etl.storage.lock import run_lock

UNKNOWN = "00000000-0000-4000-8000-00000000000d"


def summary(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout)


def _bump(session: dict[str, Any]) -> dict[str, Any]:
    newer = datetime.fromisoformat(session["updated_at"].replace("Z", "+00:00"))
    newer += timedelta(minutes=5)
    return {**session, "name": "renamed", "updated_at": newer.isoformat().replace("+00:00", "Z")}


def test_backfill_dry_run_counts_every_outcome_and_writes_nothing(
    cli_env: dict[str, str],
    api: FakeSignalWire,
    sessions: list[dict],
    migrated_url: str,
    invoke: Invoke,
) -> None:
    ids = [s["id"] for s in sessions[:10]]
    api.script(ids[9], "422")  # fails for good: a row in sync_failures to keep
    first = invoke(["backfill", "-", "--json"], cli_env, "\n".join(ids[:6] + ids[9:]))
    assert first.exit_code == 1
    api.add_session(_bump(sessions[0]))  # newer upstream: would be updated
    before = table_contents(migrated_url)
    assert before["sync_failures"] and before["sync_runs"]
    api.script(ids[8], "422")
    stdin = "\n".join([*ids[:9], UNKNOWN])
    result = invoke(["backfill", "-", "--dry-run", "--json", "--retry-failed"], cli_env, stdin)
    assert result.exit_code == 1, result.output
    got = summary(result)
    assert got["dry_run"] is True
    assert (got["inserted"], got["updated"], got["unchanged"]) == (3, 1, 5)  # ids[9] stored now
    assert (got["not_found"], got["failed"], got["failed_ids"]) == (1, 1, [ids[8]])
    assert table_contents(migrated_url) == before
    api.script(ids[8], "422")
    real = invoke(["backfill", "-", "--json", "--retry-failed"], cli_env, stdin)
    assert {k: summary(real)[k] for k in ("inserted", "updated", "unchanged", "not_found")} == {
        "inserted": 3,
        "updated": 1,
        "unchanged": 5,
        "not_found": 1,
    }


def test_fetch_dry_run_text_says_nothing_written(
    cli_env: dict[str, str], sessions: list[dict], migrated_url: str, invoke: Invoke
) -> None:
    before = table_contents(migrated_url)
    result = invoke(["fetch", sessions[0]["id"], "--dry-run"], cli_env)
    assert result.exit_code == 0
    assert "dry run, nothing written" in result.stderr and "1 inserted" in result.stderr
    assert table_contents(migrated_url) == before


def test_sync_dry_run_takes_no_lock_and_writes_nothing(
    cli_env: dict[str, str], sessions: list[dict], engine: Engine, migrated_url: str, invoke: Invoke
) -> None:
    before = table_contents(migrated_url)
    with run_lock(engine) as taken:  # a real sync is running
        assert taken
        result = invoke(["sync", "--dry-run", "--json"], cli_env)
    assert result.exit_code == 0, result.output
    got = summary(result)
    assert got["run_skipped"] is False and got["dry_run"] is True
    assert got["listed"] == len(sessions) and got["inserted"] == len(sessions)
    assert table_contents(migrated_url) == before
    assert invoke(["sync"], cli_env).exit_code == 0
    after_sync = table_contents(migrated_url)
    again = summary(invoke(["sync", "--dry-run", "--json"], cli_env))
    assert again["inserted"] == 0 and again["unchanged"] > 0
    assert table_contents(migrated_url) == after_sync


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_dry_run_writes_no_metrics_file(
    cli_env: dict[str, str], sessions: list[dict], tmp_path: Any, invoke: Invoke
) -> None:
    path = tmp_path / "roomsync.prom"
    args = ["fetch", sessions[0]["id"], "--dry-run", "--metrics-file", str(path)]
    assert invoke(args, cli_env).exit_code == 0
    assert not path.exists()


@pytest.mark.parametrize("backend", ["sqlite"])  # about SQLite files
def test_dry_run_neither_creates_nor_converts_a_sqlite_file(
    cli_env: dict[str, str], sessions: list[dict], migrated_url: str, tmp_path: Any, invoke: Invoke
) -> None:
    import sqlite3

    missing = tmp_path / "nothing-here.db"
    result = invoke(
        ["fetch", sessions[0]["id"], "--dry-run", "--database-url", f"sqlite:///{missing}"],
        cli_env,
    )
    assert result.exit_code == 3 and "no database at" in result.stderr
    assert not missing.exists()
    path = migrated_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    result = invoke(["fetch", sessions[0]["id"], "--dry-run"], cli_env)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
