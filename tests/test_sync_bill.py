"""`roomsync sync`, `backfill` and `fetch` with the rest of the bill, end to end: the CLI over
real loopback HTTP to the stand-in, into both backends. A session whose members cannot be
fetched keeps its row, costs no other session anything, fails the run (exit 1), shows in
`status` and the metrics file, and is retried by the next sync and by `--retry-failed`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from conftest import PROJECT, TOKEN, env_for

from etl.cli import main
from etl.fake_api import LIST_PATH, FakeSignalWire, generate_account
from etl.storage.engines import make_engine


@pytest.fixture
def fake() -> Iterator[FakeSignalWire]:
    with FakeSignalWire(
        project_id=PROJECT, token=TOKEN, account=generate_account(30, seed=9)
    ) as server:
        yield server


def invoke(args: list[str], env: dict[str, str]) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(main, [*args, "--json"], env=env, catch_exceptions=False)
    return result, json.loads(result.stdout) if result.stdout.strip() else {}


def scalar(url: str, sql: str) -> Any:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar_one()
    finally:
        engine.dispose()


def completed(fake: FakeSignalWire) -> list[str]:
    return sorted(i for i, s in fake.sessions.items() if s["status"] == "completed")


def test_sync_stores_the_whole_bill_then_asks_only_what_can_change(
    fake: FakeSignalWire, migrated_url: str
) -> None:
    env = env_for(fake, migrated_url)
    result, summary = invoke(["sync"], env)
    assert result.exit_code == 0, result.output
    done = completed(fake)
    bill = summary["bill"]
    assert bill["details_asked"] == 2 * len(done) and bill["detail_failed"] == 0
    members = sum(len(fake.members[i]) for i in done)
    assert scalar(migrated_url, "SELECT count(*) FROM room_session_members") == members
    assert scalar(migrated_url, "SELECT count(*) FROM rooms") == len(fake.rooms)
    assert scalar(migrated_url, "SELECT count(*) FROM video_charges") == len(fake.logs)
    fake.reset_stats()
    result, summary = invoke(["sync"], env)
    assert result.exit_code == 0 and summary["bill"]["details_asked"] == 0
    # the session list (one page), the live sessions' probe, one rooms page, one logs page
    assert fake.requests["/api/video/rooms"] == 1 and fake.requests["/api/video/logs"] == 1
    assert not any("/members" in path or "/recordings" in path for path in fake.requests)
    # a live session ends: its detail is asked for once, its charge re-read
    live = next(i for i, s in fake.sessions.items() if s["status"] == "in-progress")
    fake.complete_session(live)
    fake.reset_stats()
    result, summary = invoke(["sync"], env)
    assert result.exit_code == 0 and summary["bill"]["details_asked"] == 2
    entry = fake.log_of(live)
    assert entry is not None
    stored = scalar(migrated_url, f"SELECT charge FROM video_charges WHERE id = '{entry['id']}'")
    assert stored == pytest.approx(entry["charge"])


def test_members_failing_forever_cost_that_session_only(
    fake: FakeSignalWire, migrated_url: str, tmp_path: Path
) -> None:
    env = env_for(fake, migrated_url)
    broken = completed(fake)[0]
    fake.script_path(f"{LIST_PATH}/{broken}/members", *["500"] * 2)
    metrics = tmp_path / "roomsync.prom"
    args = ["sync", "--retries", "2", "--backoff", "0", "--metrics-file", str(metrics)]
    result, summary = invoke(args, env)
    assert result.exit_code == 1
    assert summary["failed"] == 0  # every session row is stored
    assert summary["bill"]["detail_failed"] == 1
    assert f"{broken} members" in summary["bill"]["detail_failures"]
    assert scalar(migrated_url, f"SELECT count(*) FROM room_sessions WHERE id = '{broken}'") == 1
    others = sum(len(fake.members[i]) for i in completed(fake)[1:])
    assert scalar(migrated_url, "SELECT count(*) FROM room_session_members") == others
    assert "roomsync_failing_details 1.0" in metrics.read_text()
    status = CliRunner().invoke(main, ["status", "--json"], env=env)
    assert json.loads(status.stdout)["failing_details"] == 1
    # the next run retries it (the fault is used up) and succeeds
    result, summary = invoke(["sync"], env)
    assert result.exit_code == 0, result.output
    assert summary["bill"]["details_asked"] == 1
    total = sum(len(fake.members[i]) for i in completed(fake))
    assert scalar(migrated_url, "SELECT count(*) FROM room_session_members") == total
    assert scalar(migrated_url, "SELECT count(*) FROM sync_detail_failures") == 0


def test_backfill_with_and_retry_failed(
    fake: FakeSignalWire, migrated_url: str, tmp_path: Path
) -> None:
    env = env_for(fake, migrated_url)
    ids = completed(fake)[:5]
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids))
    poison = ids[2]
    fake.recordings[poison] = [{**r, "size_in_bytes": 2**70} for r in fake.recordings[poison]] or [
        {"id": "not-a-uuid"}
    ]
    result, summary = invoke(["backfill", str(path), "--with", "recordings"], env)
    assert result.exit_code == 1 and summary["inserted"] == 5
    assert summary["bill"]["with"] == ["recordings"]
    assert list(summary["bill"]["detail_failures"]) == [f"{poison} recordings"]
    assert scalar(migrated_url, "SELECT count(*) FROM room_session_members") == 0
    fake.recordings[poison] = []
    fake.reset_stats()
    result, summary = invoke(["backfill", "--retry-failed", "--with", "recordings"], env)
    assert result.exit_code == 0, result.output
    assert summary["bill"]["details_asked"] == 1
    assert fake.total_requests == 1
    result, summary = invoke(["backfill", str(path), "--with", "none"], env)
    assert summary["bill"] is None  # the key is there (one shape), with nothing in it


def test_fetch_asks_again_for_what_it_is_given(fake: FakeSignalWire, migrated_url: str) -> None:
    env = env_for(fake, migrated_url)
    sid = completed(fake)[0]
    invoke(["fetch", sid], env)
    fake.reset_stats()
    result, summary = invoke(["fetch", sid, "--with", "members"], env)
    assert result.exit_code == 0 and summary["bill"]["details_asked"] == 1
    assert fake.requests[f"{LIST_PATH}/{sid}/members"] == 1


def test_with_refuses_unknown_parts(fake: FakeSignalWire, migrated_url: str) -> None:
    env = env_for(fake, migrated_url)
    result = CliRunner().invoke(main, ["sync", "--with", "members,invoices"], env=env)
    assert result.exit_code == 2 and "invoices" in result.output
    result = CliRunner().invoke(main, ["backfill", "-", "--with", "rooms"], env=env, input="")
    assert result.exit_code == 2 and "rooms" in result.output


def test_check_reads_each_enabled_endpoint(fake: FakeSignalWire, migrated_url: str) -> None:
    env = env_for(fake, migrated_url)
    fake.script_path("/api/video/logs", "403")
    result = CliRunner().invoke(main, ["check", "--json"], env=env)
    body = json.loads(result.stdout)
    checks = {c["name"]: c for c in body["checks"]}
    assert result.exit_code == 3
    assert checks["members"]["ok"] and checks["recordings"]["ok"] and checks["rooms"]["ok"]
    assert checks["charges"]["ok"] is False and "403" in checks["charges"]["detail"]
    result = CliRunner().invoke(main, ["check", "--json", "--with", "members"], env=env)
    assert result.exit_code == 0, result.output
    names = [c["name"] for c in json.loads(result.stdout)["checks"]]
    assert names == ["settings", "database", "credentials", "members"]
