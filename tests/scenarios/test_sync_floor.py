"""Issue 10, sync at the floor, over loopback on both backends: list first (no by-id call for a
live session the walk reached), the reach-back bound, the in-progress filter and by-id probes,
deleted sessions, final and running costs, backfill skipping, `--refresh` and `--via-list`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from conftest import PROJECT, TOKEN, env_for, table_rows
from sqlalchemy.engine import Engine

from etl.cli import main
from etl.fake_api import FakeSignalWire, generate_sessions
from etl.storage.engines import make_engine
from etl.storage.migrate import downgrade, upgrade
from etl.storage.reporting import report_rows
from etl.storage.schema import room_sessions, sync_runs

LIST_PATH = "/api/video/room_sessions"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def make_live(session: dict[str, Any], running_cost: float = 0.0) -> None:
    session.update(status="in-progress", end_time=None, duration=None, cost_in_dollars=running_cost)


def complete(session: dict[str, Any], cost: float) -> None:
    """The session ends upstream: final status, duration, a newer updated_at, its final cost."""
    session.update(
        status="completed",
        end_time=iso(at(session["start_time"]) + timedelta(minutes=30)),
        duration=1800,
        updated_at=iso(at(session["updated_at"]) + timedelta(hours=1)),
        cost_in_dollars=cost,
    )


def account(live: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """40 sessions a few hours or days apart, newest first: all completed (with a cost) but the
    ones at the `live` positions."""
    sessions = generate_sessions(40, seed=21)
    for i, session in enumerate(sessions):
        if i in live:
            make_live(session)
        elif session["status"] != "completed":
            complete(session, 0.1 * (i + 1))
    return sessions


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[FakeSignalWire] = []

    def start(sessions: list[dict[str, Any]]) -> FakeSignalWire:
        server = FakeSignalWire(sessions, project_id=PROJECT, token=TOKEN).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def run(env: dict[str, str], *args: str) -> tuple[Result, dict[str, Any]]:
    """A command's --json summary; of the sessions alone (the floor here is the sessions')."""
    bill = ["--with", "none"] if args[0] in ("sync", "backfill", "fetch") else []
    result = CliRunner().invoke(main, [*args, *bill, "--json"], env=env, catch_exceptions=False)
    return result, json.loads(result.stdout) if result.stdout.strip() else {}


def sync(env: dict[str, str], *args: str) -> dict[str, Any]:
    result, summary = run(env, "sync", "--page-size", "5", *args)
    assert result.exit_code == 0, result.output
    return summary


def rows(engine: Engine) -> dict[str, dict[str, Any]]:
    return {str(row["id"]): row for row in table_rows(engine, room_sessions)}


def by_id_requests(api: FakeSignalWire) -> dict[str, int]:
    return {
        path.rsplit("/", 1)[1]: n for path, n in api.requests.items() if path != LIST_PATH and n
    }


def totals(engine: Engine, by: str = "day") -> dict[str, Any]:
    rows_ = [r.to_dict() for r in report_rows(engine, by)]
    keys = ("sessions", "completed", "in_progress", "cost_pending", "deleted")
    summed: dict[str, Any] = {k: sum(r[k] for r in rows_) for k in keys}
    costs = [r["cost_usd"] for r in rows_ if r["cost_usd"] is not None]
    summed["cost_usd"] = round(sum(costs), 6) if costs else None
    summed["sessions_with_cost"] = sum(r["sessions_with_cost"] for r in rows_)
    return summed


def view(engine: Engine, name: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {name}"))]


# --------------------------------------------------------------------------- list first


def test_live_sessions_the_walk_reached_are_not_fetched_by_id(
    serve: Any, migrated_url: str, engine: Engine
) -> None:
    sessions = account(live=(0, 1, 2))
    api = serve(sessions)
    env = env_for(api, migrated_url)
    sync(env)
    complete(api.sessions[sessions[1]["id"]], 0.42)
    api.reset_stats()
    summary = sync(env)
    # The oldest live session is on the first page: one page sees all three.
    assert summary["probe"] == "walk" and summary["refreshed"] == 0
    assert api.total_requests == api.requests[LIST_PATH] == 1
    row = rows(engine)[sessions[1]["id"]]
    assert (row["status"], row["cost_in_dollars"], row["cost_final"]) == ("completed", 0.42, True)
    assert rows(engine)[sessions[0]["id"]]["status"] == "in-progress"


def test_the_walk_reaches_back_to_the_watermark_less_the_overlap(
    serve: Any, migrated_url: str, engine: Engine
) -> None:
    sessions = account()
    api = serve(sessions[7:])
    env = env_for(api, migrated_url)
    sync(env)
    for session in sessions[:7]:  # seven newer sessions appear
        api.add_session(session)
    api.reset_stats()
    summary = sync(env)  # default overlap: an hour, and these are hours apart
    assert summary["inserted"] == 7 and summary["full_pass"] is False
    assert api.total_requests == api.requests[LIST_PATH] == 2  # 7 new, then one older item
    assert set(rows(engine)) == {s["id"] for s in sessions}
    api.reset_stats()
    summary = sync(env, "--overlap", str(24 * 365))  # a year before the watermark: every page
    assert summary["full_pass"] is True and api.requests[LIST_PATH] == 8


def test_the_walk_reaches_back_to_a_row_waiting_for_its_final_cost(
    serve: Any, migrated_url: str, engine: Engine
) -> None:
    sessions = account()
    api = serve(sessions)
    env = env_for(api, migrated_url)
    sync(env)
    target = sessions[12]
    api.sessions[target["id"]].update(
        updated_at=iso(at(target["updated_at"]) + timedelta(hours=2)), cost_in_dollars=9.5
    )
    fetched, _ = run(env, "fetch", target["id"])
    assert fetched.exit_code == 0
    row = rows(engine)[target["id"]]
    assert row["cost_final"] is False  # a newer by-id body: the stored cost may be stale
    before = totals(engine)
    assert before["cost_pending"] == 1 and before["sessions_with_cost"] == 39
    api.reset_stats()
    summary = sync(env)
    # Position 13 of the list: the walk stops on the page that shows the next, older one.
    assert api.total_requests == api.requests[LIST_PATH] == 3
    assert summary["full_pass"] is False
    row = rows(engine)[target["id"]]
    assert (row["cost_in_dollars"], row["cost_final"]) == (9.5, True)
    after = totals(engine)
    assert after["cost_pending"] == 0 and after["sessions_with_cost"] == 40


# --------------------------------------------------------------------------- older live rows


def test_in_progress_filter_looks_at_deep_live_rows_in_one_page(
    serve: Any, migrated_url: str, engine: Engine
) -> None:
    sessions = account(live=(0, 30, 31, 35))
    api = serve(sessions)
    env = env_for(api, migrated_url)
    sync(env)
    api.reset_stats()
    summary = sync(env)
    # Walking down to position 36 would take 8 pages, by id 1 page and 3 calls; the filter
    # lists all four live sessions on one page, and the walk stops after one page.
    assert summary["probe"] == "in-progress-filter" and summary["in_progress_listed"] == 4
    assert api.total_requests == api.requests[LIST_PATH] == 2 and summary["refreshed"] == 0
    complete(api.sessions[sessions[31]["id"]], 1.75)
    api.reset_stats()
    summary = sync(env)
    # The filter no longer lists #31: it ended, and its final cost is in the list at its place.
    assert summary["in_progress_listed"] == 3 and summary["refreshed"] == 0
    assert api.total_requests == api.requests[LIST_PATH] == 1 + 7
    row = rows(engine)[sessions[31]["id"]]
    assert (row["status"], row["cost_in_dollars"], row["cost_final"]) == ("completed", 1.75, True)


def test_by_id_for_one_deep_live_row_when_many_are_live(
    serve: Any, migrated_url: str, engine: Engine
) -> None:
    sessions = account(live=(30,))
    newest = at(sessions[0]["created_at"])
    fresh = generate_sessions(10, seed=5)
    for minutes, session in enumerate(fresh, start=1):  # ten live ones in the last few minutes
        make_live(session)
        session["created_at"] = session["start_time"] = session["updated_at"] = iso(
            newest + timedelta(minutes=minutes)
        )
    api = serve(fresh + sessions)
    env = env_for(api, migrated_url)
    sync(env)
    api.reset_stats()
    summary = sync(env)
    # The filter would take 3 pages (11 live); one by-id call does it for the deep one.
    assert summary["probe"] == "by-id" and summary["refreshed"] == 1
    assert by_id_requests(api) == {sessions[30]["id"]: 1}
    assert api.requests[LIST_PATH] == 3  # the ten fresh ones, then an older item


# --------------------------------------------------------------------------- deleted upstream


def test_a_wrong_space_path_marks_nothing_deleted(
    serve: Any, migrated_url: str, engine: Engine
) -> None:
    """A server that answers 404 to everything (a wrong path in SIGNALWIRE_SPACE, a proxy) is
    not the API saying that sessions were deleted."""
    sessions = account(live=(0, 1, 5))
    api = serve(sessions)
    env = env_for(api, migrated_url)
    sync(env)
    result, summary = run(env | {"SIGNALWIRE_SPACE": api.base_url + "/v2"}, "sync")
    assert result.exit_code == 1 and summary["errors"]
    assert not [i for i, row in rows(engine).items() if row["deleted_at"] is not None]
    assert json.loads(run(env, "status")[0].stdout)["live"] == 3


def test_a_session_deleted_upstream_is_marked_and_left_alone(
    serve: Any, migrated_url: str, engine: Engine
) -> None:
    sessions = account(live=(0, 1, 5))
    api = serve(sessions)
    env = env_for(api, migrated_url)
    sync(env)
    gone = sessions[5]["id"]
    del api.sessions[gone]
    api.reset_stats()
    summary = sync(env)
    assert summary["not_found"] == 1 and by_id_requests(api) == {gone: 1}
    row = rows(engine)[gone]
    assert row["deleted_at"] is not None and row["status"] == "in-progress"  # kept for history
    report = totals(engine)
    assert (report["sessions"], report["in_progress"], report["deleted"]) == (40, 2, 1)
    by_status = {r["status"]: r["sessions"] for r in view(engine, "room_sessions_by_status")}
    assert by_status["in-progress"] == 2 and by_status["deleted"] == 1
    assert sum(r["in_progress"] for r in view(engine, "room_sessions_daily")) == 2
    assert {r.group: r.sessions for r in report_rows(engine, "status")}["deleted"] == 1
    status = json.loads(run(env, "status")[0].stdout)
    assert status["live"] == 2 and status["sessions"] == 40
    api.reset_stats()
    sync(env)
    assert api.total_requests == 1  # never asked for again, and no longer reached back to
    api.add_session(sessions[5])  # it comes back
    summary = sync(env, "--full")
    assert rows(engine)[gone]["deleted_at"] is None and summary["updated"] >= 1
    assert totals(engine)["in_progress"] == 3


def test_fetch_marks_a_404_deleted_and_clears_it_when_it_answers_again(
    serve: Any, migrated_url: str, engine: Engine
) -> None:
    sessions = account()
    api = serve(sessions)
    env = env_for(api, migrated_url)
    sync(env)
    target = sessions[3]
    del api.sessions[target["id"]]
    assert run(env, "fetch", target["id"])[0].exit_code == 0
    assert rows(engine)[target["id"]]["deleted_at"] is not None
    assert totals(engine)["deleted"] == 1 and totals(engine)["completed"] == 39
    api.add_session(target)
    assert run(env, "fetch", target["id"])[0].exit_code == 0
    assert rows(engine)[target["id"]]["deleted_at"] is None
    assert totals(engine)["deleted"] == 0


# --------------------------------------------------------------------------- costs


def test_a_running_cost_is_stored_but_never_reported_and_the_final_one_is(
    serve: Any, migrated_url: str, engine: Engine
) -> None:
    sessions = account(live=(0,))
    make_live(sessions[0], running_cost=0.3)
    api = serve(sessions)
    env = env_for(api, migrated_url)
    sync(env)
    live = rows(engine)[sessions[0]["id"]]
    assert (live["cost_in_dollars"], live["cost_final"]) == (0.3, False)
    known = totals(engine)
    assert known["sessions_with_cost"] == 39 and known["in_progress"] == 1
    complete(api.sessions[sessions[0]["id"]], 0.9)
    assert run(env, "fetch", sessions[0]["id"])[0].exit_code == 0  # by id: completed, no cost
    pending = totals(engine)
    assert pending["cost_pending"] == 1 and pending["sessions_with_cost"] == 39
    assert pending["cost_usd"] == known["cost_usd"]  # the running 0.3 is not counted
    day = sessions[0]["start_time"][:10]
    [daily] = [r for r in view(engine, "room_sessions_daily") if str(r["day"]) == day]
    assert daily["cost_pending"] == 1
    sync(env)
    final = totals(engine)
    assert final["cost_pending"] == 0 and final["sessions_with_cost"] == 40
    assert final["cost_usd"] == pytest.approx(known["cost_usd"] + 0.9)


def test_stand_in_lists_a_number_for_every_cost(serve: Any) -> None:
    sessions = generate_sessions(40, seed=3)
    sessions[0]["cost_in_dollars"] = None
    api = serve(sessions)
    import httpx

    body = httpx.get(
        f"{api.base_url}{LIST_PATH}?page_size=1000", auth=(PROJECT, TOKEN), timeout=5
    ).json()
    costs = [item["cost_in_dollars"] for item in body["data"]]
    assert len(costs) == 40 and all(isinstance(c, float) for c in costs)


# --------------------------------------------------------------------------- backfill


def test_backfill_skips_exact_ids_unless_refresh(
    serve: Any, migrated_url: str, engine: Engine, tmp_path: Path
) -> None:
    sessions = account(live=(0,))
    api = serve(sessions)
    env = env_for(api, migrated_url)
    sync(env)
    path = tmp_path / "ids.txt"
    path.write_text("".join(f"{s['id']}\n" for s in sessions))
    api.reset_stats()
    result, summary = run(env, "backfill", str(path))
    assert result.exit_code == 0, result.output
    assert summary["skipped"] == 39 and summary["requested"] == 40
    assert by_id_requests(api) == {sessions[0]["id"]: 1}  # the live one only
    with engine.connect() as conn:
        ledger = conn.execute(sa.select(sync_runs).order_by(sync_runs.c.id.desc())).first()
    assert ledger is not None and ledger.command == "backfill" and ledger.skipped == 39
    human = CliRunner().invoke(main, ["backfill", str(path)], env=env)
    assert "39 skipped" in human.stderr
    api.reset_stats()
    result, summary = run(env, "backfill", str(path), "--refresh")
    assert summary["skipped"] == 0 and summary["unchanged"] == 40
    assert api.total_requests == 40


def test_backfill_via_list_fetches_by_id_only_what_the_list_lacks(
    serve: Any, migrated_url: str, engine: Engine, tmp_path: Path
) -> None:
    sessions = account(live=(2,))
    api = serve(sessions)
    env = env_for(api, migrated_url)
    wanted = [s["id"] for s in sessions[:10]]
    path = tmp_path / "ids.txt"
    path.write_text("\n".join([*wanted, wanted[0], UNKNOWN]))
    result, summary = run(env, "backfill", str(path), "--via-list")
    assert result.exit_code == 0, result.output
    assert summary["inserted"] == 10 and summary["not_found"] == 1
    assert api.requests[LIST_PATH] == 1 and by_id_requests(api) == {UNKNOWN: 1}
    stored = rows(engine)
    assert set(stored) == set(wanted)
    assert sum(r["cost_final"] for r in stored.values()) == 9  # the live one's is running
    api.reset_stats()
    result, summary = run(env, "backfill", str(path), "--via-list")
    assert summary["unchanged"] == 10 and api.total_requests == 1 + 1


def test_via_list_needs_a_file(api: FakeSignalWire, migrated_url: str) -> None:
    result = CliRunner().invoke(
        main, ["backfill", "--retry-failed", "--via-list"], env=env_for(api, migrated_url)
    )
    assert result.exit_code == 2 and "--via-list" in result.output


# --------------------------------------------------------------------------- migration 0005


def test_migration_0005_marks_existing_listed_costs_final(db_url: str) -> None:
    upgrade(db_url, "0004")
    engine = make_engine(db_url)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    insert = sa.text(
        "INSERT INTO room_sessions (id, record_on_start, tone_on_entry_and_exit, "
        "room_join_video_off, user_join_video_off, locked, status, cost_in_dollars, "
        "created_at, updated_at, raw, first_synced_at, last_synced_at) VALUES "
        "(:id, false, false, false, false, false, :status, :cost, :t, :t, '{}', :t, :t)"
    )
    now = "2026-11-01 00:00:00+00:00"
    try:
        with engine.begin() as conn:
            for session_id, status, cost in zip(
                ids, ("completed", "completed", "in-progress"), (1.5, 0.5, 0.0), strict=True
            ):
                conn.execute(insert, {"id": session_id, "status": status, "cost": cost, "t": now})
            conn.execute(
                sa.text("INSERT INTO sync_relist (session_id, created_at) VALUES (:id, :t)"),
                {"id": ids[1], "t": now},
            )
        upgrade(db_url)
        with engine.connect() as conn:
            final = dict(conn.execute(sa.text("SELECT id, cost_final FROM room_sessions")).all())
            [daily] = conn.execute(sa.text("SELECT * FROM room_sessions_daily")).mappings()
        # listed final (not waiting in the relist queue) / stored final by id / live
        assert [
            bool(final[i if isinstance(next(iter(final)), str) else uuid.UUID(i)]) for i in ids
        ] == [True, False, False]
        assert (daily["cost_usd"], daily["sessions_with_cost"], daily["cost_pending"]) == (
            1.5,
            1,
            1,
        )
        downgrade(db_url, "0004")
        with engine.connect() as conn:
            [old] = conn.execute(sa.text("SELECT * FROM room_sessions_daily")).mappings()
        assert old["cost_usd"] == 2.0 and "cost_pending" not in old
    finally:
        engine.dispose()
