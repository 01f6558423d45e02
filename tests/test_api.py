"""The Python API for orchestrators (etl.api), called directly as Airflow or Dagster would."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import PROJECT, TOKEN, make_settings, table_rows

from etl import api as roomsync
from etl.errors import AuthError, ConfigError, DatabaseError, InputError, RunFailed
from etl.fake_api import FakeSignalWire
from etl.storage.engines import make_engine
from etl.storage.migrate import head_revision
from etl.storage.schema import room_sessions

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def stored_ids(url: str) -> set[str]:
    return {str(row["id"]) for row in table_rows(url, room_sessions)}


def test_upgrade_then_backfill_then_rerun(db_url: str, api: FakeSignalWire) -> None:
    assert roomsync.upgrade(db_url) == head_revision()
    ids = list(api.sessions)[:12]
    settings = make_settings(api, db_url)
    first = roomsync.backfill(ids + ids[:3], settings)
    assert (first["requested"], first["inserted"], first["exit_code"]) == (12, 12, 0)
    assert stored_ids(db_url) == set(ids)
    again = roomsync.backfill(ids, settings)
    assert (again["unchanged"], again["inserted"]) == (12, 0)


def test_backfill_file_with_a_shard(migrated_url: str, api: FakeSignalWire, tmp_path: Path) -> None:
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("# all of them\n" + "\n".join(api.sessions) + "\n")
    settings = make_settings(api, migrated_url)
    halves = [
        roomsync.backfill_file(ids_file, settings, shard=f"{k}/2", with_parts=()) for k in (0, 1)
    ]
    assert sum(half["inserted"] for half in halves) == len(api.sessions)
    assert all(half["inserted"] > 0 for half in halves)
    assert stored_ids(migrated_url) == set(api.sessions)
    assert api.total_requests == len(api.sessions)


def test_failed_ids_are_counted_or_raised(migrated_url: str, api: FakeSignalWire) -> None:
    ids = list(api.sessions)[:5]
    settings = make_settings(api, migrated_url, retries=1)
    api.script(ids[0], "500")
    summary = roomsync.backfill(ids, settings)
    assert summary["failed_ids"] == [ids[0]] and summary["exit_code"] == 1
    api.script(ids[0], "500")
    with pytest.raises(RunFailed, match="1 id") as raised:
        roomsync.backfill([], settings, retry_failed=True, raise_on_failure=True)
    assert raised.value.summary["failed_ids"] == [ids[0]]
    retried = roomsync.backfill([], settings, retry_failed=True, raise_on_failure=True)
    assert (retried["requested"], retried["inserted"], retried["exit_code"]) == (1, 1, 0)


def test_sync_then_a_skipped_sync_under_the_lock(migrated_url: str, api: FakeSignalWire) -> None:
    from etl.storage.lock import run_lock

    settings = make_settings(api, migrated_url)
    result = roomsync.sync(settings)
    assert result["listed"] == len(api.sessions) and result["exit_code"] == 0
    assert stored_ids(migrated_url) == set(api.sessions)
    engine = make_engine(migrated_url)
    try:
        with run_lock(engine) as taken:
            assert taken
            assert roomsync.sync(settings) == {
                "command": "sync",
                "run_id": None,
                "run_skipped": True,
                "exit_code": 0,
                "dry_run": False,
                "requested": 0,
                "inserted": 0,
                "updated": 0,
                "unchanged": 0,
                "skipped": 0,
                "not_found": 0,
                "failed": 0,
                "elapsed_s": 0.0,
                "failed_ids": [],
                "retries": 0,
                "throttled": 0,
                "interrupted": None,
                "errors": [],
                "bill": None,
                "listed": None,
                "refreshed": None,
                "in_progress_listed": None,
                "probe": None,
                "full_pass": None,
                "reason": "another sync is running",
            }
    finally:
        engine.dispose()


def test_an_unmigrated_database_is_refused(db_url: str, api: FakeSignalWire) -> None:
    with pytest.raises(DatabaseError, match="roomsync db upgrade"):
        roomsync.backfill(list(api.sessions)[:1], make_settings(api, db_url))
    with pytest.raises(DatabaseError, match="roomsync db upgrade"):
        roomsync.sync(make_settings(api, db_url))
    assert api.total_requests == 0


def test_errors_are_the_documented_exceptions(migrated_url: str, api: FakeSignalWire) -> None:
    with pytest.raises(InputError, match="invalid id"):
        roomsync.backfill(["not-a-uuid"], make_settings(api, migrated_url))
    with pytest.raises(InputError, match="out of range"):
        roomsync.backfill(list(api.sessions)[:1], make_settings(api, migrated_url), shard="2/2")
    with pytest.raises(AuthError):
        roomsync.sync(make_settings(api, migrated_url, api_token="wrong"))
    assert api.total_requests == 1  # only the refused sync reached the API


def test_settings_come_from_the_environment_with_overrides(
    monkeypatch: pytest.MonkeyPatch, migrated_url: str, api: FakeSignalWire
) -> None:
    monkeypatch.delenv("SIGNALWIRE_SPACE", raising=False)
    with pytest.raises(ConfigError, match="SIGNALWIRE_SPACE"):
        roomsync.settings_from_env()
    monkeypatch.setenv("SIGNALWIRE_SPACE", api.base_url)
    monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", PROJECT)
    monkeypatch.setenv("SIGNALWIRE_API_TOKEN", TOKEN)
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    settings = roomsync.settings_from_env(concurrency=3)
    assert (settings.concurrency, settings.database_url) == (3, migrated_url)
    assert roomsync.backfill(list(api.sessions)[:2])["inserted"] == 2  # settings from env


@pytest.mark.parametrize("example", ["airflow_dag.py", "dagster_job.py"])
def test_examples_call_only_what_the_api_offers(example: str) -> None:
    """Every `api.NAME(...)` the orchestrator examples call exists, with keyword arguments it
    accepts: caught here, before examples/check.sh runs them for real (in .ci/run)."""
    import inspect

    tree = ast.parse((EXAMPLES / example).read_text())
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "api"
    ]
    assert calls
    for call in calls:
        function = getattr(roomsync, call.func.attr)  # type: ignore[attr-defined]
        accepted = inspect.signature(function).parameters
        assert all(keyword.arg in accepted for keyword in call.keywords), call.func.attr  # type: ignore[attr-defined]
