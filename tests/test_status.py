"""`roomsync status`: the figures match the tables, --max-age is a health check, nothing is
written or created; both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from conftest import Invoke
from snapshots import table_contents
from sqlalchemy.engine import Engine

from etl.cli import main
from etl.fake_api import FakeSignalWire
from etl.outcomes import RunOutcome
from etl.status import parse_duration
from etl.storage.reporting import read_status
from etl.storage.schema import room_sessions, sync_failures, sync_relist, sync_runs


def status_json(invoke: Invoke, env: dict[str, str], *args: str) -> tuple[Result, dict[str, Any]]:
    result = invoke(["status", "--json", *args], env)
    return result, json.loads(result.stdout)


def scalar(engine: Engine, query: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def test_status_matches_the_tables(
    cli_env: dict[str, str],
    api: FakeSignalWire,
    sessions: list[dict],
    engine: Engine,
    invoke: Invoke,
) -> None:
    ids = [s["id"] for s in sessions[:12]]
    api.script(ids[0], "422")  # fails for good: one failing id
    done = CliRunner().invoke(main, ["backfill", "-"], env=cli_env, input="\n".join(ids))
    assert done.exit_code == 1
    result, status = status_json(invoke, cli_env)
    assert result.exit_code == 0, result.output
    c = room_sessions.c
    count = sa.select(sa.func.count())
    assert status["sessions"] == scalar(engine, count.select_from(room_sessions)) == 11
    assert status["live"] == scalar(
        engine, count.select_from(room_sessions).where(c.status == "in-progress")
    )
    assert status["failing_ids"] == scalar(engine, count.select_from(sync_failures)) == 1
    pending = c.status == "completed", sa.not_(c.cost_final), c.deleted_at.is_(None)
    awaiting = scalar(engine, count.select_from(room_sessions).where(*pending))
    assert status["awaiting_final_cost"] == awaiting > 0  # completed by id: no final cost yet
    assert awaiting == scalar(engine, count.select_from(sync_relist))
    newest = scalar(engine, sa.select(sa.func.max(c.created_at)))
    assert datetime.fromisoformat(status["newest_session"]["created_at"]) == newest
    run = status["runs"]["backfill"]
    with engine.connect() as conn:
        row = conn.execute(sa.select(sync_runs).order_by(sync_runs.c.id.desc())).first()
    assert run["id"] == row.id and run["outcome"] == RunOutcome.FAILED == row.outcome
    assert run["inserted"] == 11 and run["failed"] == 1 and run["requested"] == 12
    assert datetime.fromisoformat(run["started_at"]) == row.started_at
    assert datetime.fromisoformat(run["finished_at"]) == row.finished_at
    assert run["error"] is None and run["last_success_at"] is None
    assert status["last_successful_sync"] is None
    assert status["schema"]["at_head"] is True and status["schema"]["revision"]
    text = invoke(["status"], cli_env)
    assert text.exit_code == 0
    assert "11 stored" in text.stdout and "failing ids:  1" in text.stdout
    assert "last sync ok: never" in text.stdout and "backfill" in text.stdout


def test_runs_keyed_by_command_and_last_successful_sync(
    cli_env: dict[str, str], engine: Engine, invoke: Invoke
) -> None:
    assert invoke(["sync"], cli_env).exit_code == 0
    _, status = status_json(invoke, cli_env)
    assert status["runs"]["sync"]["outcome"] == RunOutcome.OK
    assert status["last_successful_sync"]["id"] == status["runs"]["sync"]["id"]
    assert status["runs"]["sync"]["last_success_at"] == status["runs"]["sync"]["finished_at"]
    assert 0 <= status["last_successful_sync_age_s"] < 60
    bad = cli_env | {"SIGNALWIRE_API_TOKEN": "wrong"}
    assert invoke(["sync"], bad).exit_code == 3
    _, after = status_json(invoke, cli_env)
    assert after["runs"]["sync"]["outcome"] == RunOutcome.ERROR
    assert "refused the credentials" in after["runs"]["sync"]["error"]
    assert after["last_successful_sync"]["id"] == status["runs"]["sync"]["id"]


def _age_last_sync(engine: Engine, by: timedelta) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(sync_runs)
            .where(sync_runs.c.command == "sync")
            .values(finished_at=datetime.now(UTC) - by, started_at=datetime.now(UTC) - by)
        )


def test_max_age_is_a_health_check(cli_env: dict[str, str], engine: Engine, invoke: Invoke) -> None:
    never = invoke(["status", "--max-age", "15m"], cli_env)
    assert never.exit_code == 1 and "no sync has ever succeeded" in never.stderr
    assert invoke(["sync"], cli_env).exit_code == 0
    assert invoke(["status", "--max-age", "90s"], cli_env).exit_code == 0
    _age_last_sync(engine, timedelta(minutes=20))
    stale, body = status_json(invoke, cli_env, "--max-age", "15m")
    assert stale.exit_code == 1 and body["healthy"] is False and body["max_age_s"] == 900
    fresh, body = status_json(invoke, cli_env, "--max-age", "2h")
    assert fresh.exit_code == 0 and body["healthy"] is True
    assert invoke(["status", "--max-age", "soon"], cli_env).exit_code == 2


def test_status_writes_nothing(cli_env: dict[str, str], migrated_url: str, invoke: Invoke) -> None:
    assert invoke(["sync"], cli_env).exit_code == 0
    before = table_contents(migrated_url)
    assert invoke(["status", "--max-age", "1h"], cli_env).exit_code == 0
    assert table_contents(migrated_url) == before


def test_status_never_creates_a_database_file(tmp_path: Path, invoke: Invoke) -> None:
    path = tmp_path / "missing.db"
    for args in (["status"], ["status", "--json"]):
        result = invoke(args, {"DATABASE_URL": f"sqlite:///{path}"})
        assert result.exit_code == 3 and "no database at" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_status_of_an_unmigrated_database_is_exit_3(db_url: str, invoke: Invoke) -> None:
    result = invoke(["status"], {"DATABASE_URL": db_url})
    assert result.exit_code == 3 and "roomsync db upgrade" in result.stderr


def test_read_status_on_an_empty_database(engine: Engine) -> None:
    status = read_status(engine)
    assert (status.sessions, status.live, status.failing_ids) == (0, 0, 0)
    assert status.runs == {} and status.newest_session is None
    assert not status.fresh(timedelta(days=365))


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("0.5h", 1800)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "15", "m", "-5m", "0s", "15 minutes", "2w"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
