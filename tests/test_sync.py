"""`roomsync sync` over loopback: discovery, early stop, refresh, ledger, lock; both backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from conftest import PROJECT, TOKEN, env_for, table_rows
from sqlalchemy.engine import Engine

from etl.cli import main
from etl.fake_api import FakeSignalWire, generate_sessions
from etl.storage.lock import run_lock
from etl.storage.schema import room_sessions, sync_failures, sync_runs

LIST_PATH = "/api/video/room_sessions"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sync(env: dict[str, str], *args: str) -> tuple[Result, dict[str, Any]]:
    """`roomsync sync --json` of the sessions alone (the bill's requests: tests/test_bill_sync)."""
    bill = [] if "--with" in args else ["--with", "none"]
    result = CliRunner().invoke(
        main, ["sync", "--json", *bill, *args], env=env, catch_exceptions=False
    )
    return result, json.loads(result.stdout) if result.stdout.strip() else {}


def rows(engine: Engine) -> dict[str, dict[str, Any]]:
    return {str(row["id"]): row for row in table_rows(engine, room_sessions)}


def runs(engine: Engine) -> list[dict[str, Any]]:
    return table_rows(engine, sync_runs, order_by="id")


def failed_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {str(i) for i in conn.execute(sa.select(sync_failures.c.session_id)).scalars()}


@pytest.fixture
def upstream() -> list[dict[str, Any]]:
    """40 sessions; the oldest one is still in progress and has a cost in the list."""
    sessions = generate_sessions(40, seed=21)
    oldest = sessions[-1]
    oldest.update(
        status="in-progress",
        end_time=None,
        duration=None,
        cost_in_dollars=0.5,
        enable_room_previews=True,
        locked_cover="cover.png",
    )
    return sessions


@pytest.fixture(params=[False, True], ids=["relative-links", "absolute-links"])
def list_api(request: pytest.FixtureRequest, upstream: list[dict[str, Any]]) -> Iterator[Any]:
    with FakeSignalWire(
        upstream, project_id=PROJECT, token=TOKEN, absolute_links=request.param
    ) as server:
        yield server


def test_first_sync_takes_every_page_with_list_only_fields(
    list_api: FakeSignalWire, upstream: list[dict[str, Any]], migrated_url: str, engine: Engine
) -> None:
    result, summary = sync(env_for(list_api, migrated_url), "--page-size", "7")
    assert result.exit_code == 0, result.output
    assert summary["listed"] == 40 and summary["full_pass"] is True
    assert summary["inserted"] == 40 and summary["failed"] == 0
    assert list_api.requests[LIST_PATH] == 6  # 40 sessions, 7 a page
    stored = rows(engine)
    assert set(stored) == {s["id"] for s in upstream}
    for session in upstream:
        assert stored[session["id"]]["cost_in_dollars"] == session["cost_in_dollars"]
        assert stored[session["id"]]["raw"]["cost_in_dollars"] == session["cost_in_dollars"]
    # Nothing was stored before, so nothing needed re-fetching by id.
    assert summary["refreshed"] == 0 and list_api.total_requests == 6
    (run,) = runs(engine)
    assert run["command"] == "sync" and run["outcome"] == "ok" and run["full_pass"] is True
    newest = max(datetime.fromisoformat(s["created_at"]) for s in upstream)
    assert run["watermark"] == newest
    assert run["inserted"] == 40 and run["finished_at"] is not None


@pytest.mark.parametrize("backend", ["sqlite"])  # about the summary line
def test_the_text_summary_counts_only_numbers(list_api: FakeSignalWire, migrated_url: str) -> None:
    result = CliRunner().invoke(main, ["sync"], env=env_for(list_api, migrated_url))
    assert result.exit_code == 0, result.output
    summary_line = next(line for line in result.stderr.splitlines() if "inserted" in line)
    assert "40 inserted" in summary_line and "False" not in summary_line


def test_second_sync_lists_live_sessions_instead_of_fetching_them_by_id(
    list_api: FakeSignalWire, upstream: list[dict[str, Any]], migrated_url: str, engine: Engine
) -> None:
    """Seven unfinished sessions (five in progress, two with a null status), the oldest older
    than the walk needs to go: one in-progress filter walk (one page of 5) sees four still live;
    the oldest has ended, so the walk goes down to it and brings its final cost. No session is
    asked for by id: the walk reached the two with a null status too."""
    env = env_for(list_api, migrated_url)
    sync(env, "--page-size", "5")
    live = [s["id"] for s in upstream if s["status"] == "in-progress"]
    assert len(live) == 5 and sum(s["status"] is None for s in upstream) == 2
    oldest = upstream[-1]
    finished = datetime.fromisoformat(oldest["start_time"]) + timedelta(minutes=30)
    list_api.sessions[oldest["id"]].update(
        status="completed",
        end_time=iso(finished),
        duration=1800,
        updated_at=iso(datetime.fromisoformat(oldest["updated_at"]) + timedelta(hours=1)),
        cost_in_dollars=0.75,  # the final cost, which only the list carries
    )
    list_api.reset_stats()
    result, summary = sync(env, "--page-size", "5", "--overlap", "0")
    assert result.exit_code == 0, result.output
    assert summary["probe"] == "in-progress-filter" and summary["in_progress_listed"] == 4
    assert summary["refreshed"] == 0
    assert list_api.total_requests == list_api.requests[LIST_PATH] == 1 + 8
    assert summary["full_pass"] is True
    row = rows(engine)[oldest["id"]]
    assert (row["status"], row["duration"]) == ("completed", 1800)
    assert row["cost_in_dollars"] == 0.75 and row["raw"]["cost_in_dollars"] == 0.75
    assert row["cost_final"] is True
    assert row["enable_room_previews"] is True and row["raw"]["locked_cover"] == "cover.png"
    assert row["raw"]["status"] == "completed"


def test_a_by_id_refresh_alone_keeps_the_list_only_fields(
    list_api: FakeSignalWire, upstream: list[dict[str, Any]], migrated_url: str, engine: Engine
) -> None:
    """A session still live is re-fetched by id; what the list said about it stays."""
    env = env_for(list_api, migrated_url)
    sync(env, "--page-size", "5")
    oldest = upstream[-1]
    list_api.sessions[oldest["id"]]["updated_at"] = iso(
        datetime.fromisoformat(oldest["updated_at"]) + timedelta(minutes=5)
    )
    list_api.sessions[oldest["id"]]["display_name"] = "renamed while live"
    result, summary = sync(env, "--page-size", "5", "--overlap", "0")
    assert result.exit_code == 0 and summary["full_pass"] is False
    row = rows(engine)[oldest["id"]]
    assert row["display_name"] == "renamed while live" and row["status"] == "in-progress"
    assert row["cost_in_dollars"] == 0.5 and row["raw"]["cost_in_dollars"] == 0.5
    assert row["raw"]["locked_cover"] == "cover.png"


def test_repeated_list_items_are_stored_and_counted_once(
    upstream: list[dict[str, Any]], migrated_url: str, engine: Engine
) -> None:
    """Pages can shift while a walk runs: an item may show up on two pages."""
    with FakeSignalWire(upstream, project_id=PROJECT, token=TOKEN) as api:
        # The 5th session ends page 1 and, listed a second time, starts page 2.
        api.sessions[f"{upstream[4]['id']}-again"] = upstream[4]
        result, summary = sync(env_for(api, migrated_url), "--page-size", "5")
        assert api.requests[LIST_PATH] == 9
    assert result.exit_code == 0, result.output
    assert summary["listed"] == 40 == summary["requested"]
    counted = sum(summary[k] for k in ("inserted", "updated", "unchanged", "not_found", "failed"))
    assert counted == summary["requested"]
    assert len(rows(engine)) == 40


def test_first_sync_stores_ids_in_any_form_once_and_canonical(
    upstream: list[dict[str, Any]], migrated_url: str, engine: Engine
) -> None:
    """A first sync (no set of its own for the ids it stored) still stores each session once,
    under its canonical id, whatever form of the id the list sends."""
    again, upper = upstream[4], upstream[10]
    with FakeSignalWire(upstream, project_id=PROJECT, token=TOKEN) as api:
        api.sessions["urn-again"] = {**again, "id": f"urn:uuid:{again['id'].upper()}"}
        api.sessions[upper["id"]]["id"] = upper["id"].upper()
        result, summary = sync(env_for(api, migrated_url), "--page-size", "5")
    assert result.exit_code == 0, result.output
    assert summary["listed"] == 40 == summary["requested"] == summary["inserted"]
    assert set(rows(engine)) == {s["id"] for s in upstream}
    assert rows(engine)[upper["id"]]["raw"]["id"] == upper["id"].upper()


def test_unordered_list_is_walked_in_full(
    upstream: list[dict[str, Any]], migrated_url: str, engine: Engine
) -> None:
    with FakeSignalWire(upstream, project_id=PROJECT, token=TOKEN, shuffle_list=True) as api:
        env = env_for(api, migrated_url)
        sync(env, "--page-size", "5")
        api.reset_stats()
        result, summary = sync(env, "--page-size", "5", "--overlap", "0")
    assert result.exit_code == 0, result.output
    assert summary["full_pass"] is True and summary["listed"] == 40  # every page of the walk
    assert summary["refreshed"] == 0  # every live session was in it
    assert summary["unchanged"] >= 40 - summary["in_progress_listed"]


def test_new_sessions_are_discovered_on_an_early_stop(
    upstream: list[dict[str, Any]], migrated_url: str, engine: Engine
) -> None:
    with FakeSignalWire(upstream[5:], project_id=PROJECT, token=TOKEN) as api:
        env = env_for(api, migrated_url)
        sync(env, "--page-size", "5")
        for session in upstream[:5]:  # five newer sessions appear upstream
            api.add_session(session)
        result, summary = sync(env, "--page-size", "5", "--overlap", "0")
    assert result.exit_code == 0 and summary["full_pass"] is False
    assert set(rows(engine)) == {s["id"] for s in upstream}


def test_failed_ids_are_recorded_and_the_next_sync_retries_exactly_those(
    upstream: list[dict[str, Any]], migrated_url: str, engine: Engine
) -> None:
    old = upstream[-3]
    assert old["status"] == "completed"
    good_duration = old["duration"]
    with FakeSignalWire(upstream, project_id=PROJECT, token=TOKEN) as api:
        env = env_for(api, migrated_url)
        api.sessions[old["id"]]["duration"] = "long"  # malformed in the list
        result, summary = sync(env, "--page-size", "5")
        assert result.exit_code == 1
        assert summary["failed_ids"] == [old["id"]] and failed_ids(engine) == {old["id"]}
        assert old["id"] not in rows(engine)
        assert runs(engine)[-1]["outcome"] == "failed"
        api.sessions[old["id"]]["duration"] = good_duration  # fixed upstream
        api.reset_stats()
        result, summary = sync(env, "--page-size", "5", "--overlap", "0")
    assert result.exit_code == 0, result.output
    assert summary["full_pass"] is False  # the old session is not listed again...
    assert failed_ids(engine) == set()  # ...but retried by id, because it had failed
    assert rows(engine)[old["id"]]["duration"] == good_duration
    completed_by_id = [
        path
        for path, n in api.requests.items()
        if path.startswith(LIST_PATH + "/")
        and n
        and api.sessions[path.rsplit("/", 1)[1]]["status"] == "completed"
    ]
    assert completed_by_id == [f"{LIST_PATH}/{old['id']}"]  # exactly the failed one


def test_a_broken_list_still_refreshes_and_exits_1(
    upstream: list[dict[str, Any]], migrated_url: str, engine: Engine
) -> None:
    with FakeSignalWire(upstream, project_id=PROJECT, token=TOKEN) as api:
        env = env_for(api, migrated_url)
        sync(env)
        api.script_list("422")
        api.reset_stats()
        result, summary = sync(env)
        assert api.requests[f"{LIST_PATH}/{upstream[-1]['id']}"] == 1
    assert result.exit_code == 1
    assert "listing sessions failed" in summary["errors"][0]
    run = runs(engine)[-1]
    assert run["outcome"] == "failed" and "422" in run["error"] and run["watermark"] is None


def test_a_sync_that_finds_the_lock_taken_does_nothing(
    api: FakeSignalWire, migrated_url: str, engine: Engine
) -> None:
    with run_lock(engine) as taken:
        assert taken
        result, summary = sync(env_for(api, migrated_url))
    assert result.exit_code == 0
    assert summary == {
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
    assert "skipped" in result.stderr
    assert api.total_requests == 0 and runs(engine) == []
    after, _ = sync(env_for(api, migrated_url))
    assert after.exit_code == 0 and api.total_requests > 0


def test_backfill_retry_failed_fetches_exactly_the_failed_ids(
    api: FakeSignalWire,
    sessions: list[dict[str, Any]],
    migrated_url: str,
    engine: Engine,
    tmp_path: Any,
) -> None:
    env = env_for(api, migrated_url)
    ids = [s["id"] for s in sessions[:6]]
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    api.script(ids[1], "500", "500")
    api.script(ids[4], "mismatch")
    args = ["backfill", str(tmp_path / "ids.txt"), "--json", "--retries", "2", "--backoff", "0"]
    first = CliRunner().invoke(main, args, env=env)
    assert first.exit_code == 1
    assert failed_ids(engine) == {ids[1], ids[4]}
    api.reset_stats()
    retry_args = ["backfill", "--retry-failed", "--json", "--with", "none"]
    retry = CliRunner().invoke(main, retry_args, env=env)
    assert retry.exit_code == 0, retry.output
    assert json.loads(retry.stdout)["requested"] == 2
    assert api.total_requests == 2
    assert failed_ids(engine) == set() and set(rows(engine)) == set(ids)


def test_backfill_needs_a_file_or_retry_failed(api: FakeSignalWire, migrated_url: str) -> None:
    result = CliRunner().invoke(main, ["backfill"], env=env_for(api, migrated_url))
    assert result.exit_code == 2 and "--retry-failed" in result.output


def test_backfill_file_with_retry_failed_takes_both_once(
    api: FakeSignalWire,
    sessions: list[dict[str, Any]],
    migrated_url: str,
    engine: Engine,
    tmp_path: Any,
) -> None:
    env = env_for(api, migrated_url)
    ids = [s["id"] for s in sessions[:4]]
    (tmp_path / "first.txt").write_text("\n".join(ids[:2]))
    api.script(ids[0], "mismatch")
    assert CliRunner().invoke(main, ["backfill", str(tmp_path / "first.txt")], env=env).exit_code
    (tmp_path / "second.txt").write_text("\n".join(ids))  # overlaps the failed id
    api.reset_stats()
    args = ["backfill", str(tmp_path / "second.txt"), "--retry-failed", "--json"]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["requested"] == 4 and api.total_requests == 4
    assert failed_ids(engine) == set()


def complete_upstream(api: FakeSignalWire, session: dict[str, Any], cost: float) -> None:
    """The session ends upstream: final status, duration and (in the list only) its cost."""
    finished = datetime.fromisoformat(session["start_time"]) + timedelta(minutes=30)
    api.sessions[session["id"]].update(
        status="completed",
        end_time=iso(finished),
        duration=1800,
        updated_at=iso(datetime.fromisoformat(session["updated_at"]) + timedelta(hours=1)),
        cost_in_dollars=cost,
    )


def test_final_cost_arrives_even_when_the_list_failed_in_the_run_that_saw_the_end(
    upstream: list[dict[str, Any]], migrated_url: str, engine: Engine
) -> None:
    oldest = upstream[-1]
    with FakeSignalWire(upstream, project_id=PROJECT, token=TOKEN) as api:
        env = env_for(api, migrated_url)
        sync(env, "--page-size", "5")
        complete_upstream(api, oldest, 0.75)
        api.script_list("500", "500", "500", "500")  # the in-progress filter, then the walk
        failed, _ = sync(env, "--page-size", "5", "--retries", "2", "--backoff", "0")
        assert failed.exit_code == 1
        assert rows(engine)[oldest["id"]]["status"] == "completed"  # the refresh saw the end
        result, summary = sync(env, "--page-size", "5", "--overlap", "0")
    assert result.exit_code == 0 and summary["full_pass"] is True
    assert rows(engine)[oldest["id"]]["cost_in_dollars"] == 0.75


def test_final_cost_arrives_for_a_session_completed_by_a_fetch(
    upstream: list[dict[str, Any]], migrated_url: str, engine: Engine
) -> None:
    oldest = upstream[-1]
    with FakeSignalWire(upstream, project_id=PROJECT, token=TOKEN) as api:
        env = env_for(api, migrated_url)
        sync(env, "--page-size", "5")
        complete_upstream(api, oldest, 0.75)
        fetched = CliRunner().invoke(main, ["fetch", oldest["id"]], env=env)
        assert fetched.exit_code == 0
        assert rows(engine)[oldest["id"]]["cost_in_dollars"] == 0.5  # by id: no cost yet
        result, summary = sync(env, "--page-size", "5", "--overlap", "0")
        api.reset_stats()
        again, later_summary = sync(env, "--page-size", "5", "--overlap", "0")
    assert result.exit_code == 0 and summary["full_pass"] is True
    assert rows(engine)[oldest["id"]]["cost_in_dollars"] == 0.75
    assert later_summary["full_pass"] is False  # listed once, it leaves the queue


# --------------------------------------------------------------------------- Listing


def t(hour: int) -> datetime:
    return datetime(2026, 11, 20, hour, tzinfo=UTC)


def test_listing_stops_early_only_past_the_watermark_and_newest_first() -> None:
    from etl.sync import Listing

    listing = Listing(stop_before=t(10), previous_watermark=t(12))
    for hour in (15, 13, 11):
        listing.observe(t(hour))
        assert not listing.past_watermark()
    listing.observe(t(9))
    assert listing.past_watermark()
    assert listing.newest == t(15) and listing.newest_first


def test_listing_out_of_order_never_stops_early() -> None:
    from etl.sync import Listing

    listing = Listing(stop_before=t(10), previous_watermark=t(12))
    for hour in (15, 9, 16, 8):
        listing.observe(t(hour))
    assert not listing.newest_first and not listing.past_watermark()


def test_listing_reaches_back_and_counts_each_id_once() -> None:
    from etl.sync import Listing

    listing = Listing(stop_before=t(10), previous_watermark=t(12))
    listing.reach_back_to(t(4))
    listing.reach_back_to(t(6))  # a later, newer entry does not undo the reach
    assert listing.stop_before == t(4)
    session_id = "51bcd77a-1751-4579-8e4d-c3a3578a60d8"
    assert listing.first_time(session_id) and not listing.first_time(session_id.upper())


def test_listing_watermark_moves_only_when_the_walk_completed() -> None:
    from etl.sync import Listing

    listing = Listing(stop_before=None, previous_watermark=t(12))
    listing.observe(t(15))
    assert listing.watermark() is None
    listing.completed = True
    assert listing.watermark() == t(15)
    empty = Listing(stop_before=None, previous_watermark=t(12), completed=True)
    assert empty.watermark() == t(12)
