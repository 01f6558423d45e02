"""The whole run as a library call: bounded concurrency, outcomes, what is kept on failure."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import make_settings
from sqlalchemy.engine import Engine

from etl.config import Settings
from etl.errors import AuthError
from etl.fake_api import FakeSignalWire
from etl.pipeline import run_ids
from etl.storage import Store
from etl.storage.schema import room_sessions

UNKNOWN = "00000000-0000-4000-8000-00000000000a"


def stored_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {str(i) for i in conn.execute(sa.select(room_sessions.c.id)).scalars()}


def test_every_outcome_is_counted(
    api: FakeSignalWire, settings: Settings, engine: Engine, sessions: list[dict[str, Any]]
) -> None:
    ids = [s["id"] for s in sessions]
    api.script(ids[0], "mismatch")
    api.script(ids[1], "badtypes")
    api.script(ids[2], "500", "reset")
    summary = run_ids([*ids, UNKNOWN], settings, Store(engine))
    assert summary.requested == len(ids) + 1
    assert summary.counts == {
        "inserted": len(ids) - 2,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "not_found": 1,
        "failed": 2,
    }
    assert set(summary.failures) == {ids[0], ids[1]}
    assert "not " + ids[0] in summary.failures[ids[0]]
    assert stored_ids(engine) == set(ids[2:])
    assert summary.exit_code == 1


def test_rerun_is_idempotent_and_retries_what_failed(
    api: FakeSignalWire, settings: Settings, engine: Engine, sessions: list[dict[str, Any]]
) -> None:
    ids = [s["id"] for s in sessions]
    api.script(ids[5], *["503"] * 5)
    first = run_ids(ids, make_settings(api, settings.database_url, retries=2), Store(engine))
    assert first.counts["failed"] == 1 and first.exit_code == 1
    second = run_ids(ids, settings, Store(engine))
    assert second.counts["inserted"] == 1 and second.counts["unchanged"] == len(ids) - 1
    assert second.exit_code == 0
    assert stored_ids(engine) == set(ids)


def test_in_flight_requests_never_exceed_concurrency(
    sessions: list[dict[str, Any]], migrated_url: str, engine: Engine
) -> None:
    with FakeSignalWire(sessions, project_id="p", token="t", latency=0.05) as slow_api:
        settings = make_settings(
            slow_api, migrated_url, project_id="p", api_token="t", concurrency=3, batch_size=7
        )
        summary = run_ids([s["id"] for s in sessions], settings, Store(engine))
    assert summary.counts["inserted"] == len(sessions)
    assert slow_api.max_in_flight == 3


def test_auth_failure_stops_the_run_and_keeps_what_was_stored(
    api: FakeSignalWire, settings: Settings, engine: Engine, sessions: list[dict[str, Any]]
) -> None:
    ids = [s["id"] for s in sessions]
    api.script(ids[10], "401")
    one_at_a_time = make_settings(api, settings.database_url, concurrency=1)
    with pytest.raises(AuthError):
        run_ids(ids, one_at_a_time, Store(engine))
    assert stored_ids(engine) == set(ids[:10])
    assert api.total_requests == 11


def _fail_then_store(settings: Settings, engine: Engine, api: FakeSignalWire, **how: Any) -> Any:
    """A run whose id fails by id (flushed to the ledger), then arrives stored (as a sync's
    list walk brings it): it must not count as failed."""
    from etl.pipeline import Run, execute
    from etl.records import parse_session
    from etl.signalwire import SignalWireClient

    session = next(iter(api.sessions.values()))
    api.script(session["id"], "500")

    async def body(run: Run, client: SignalWireClient) -> None:
        await run.fetch_ids(client, [session["id"]])  # fails, and is written to the ledger
        await run.add_rows([parse_session(session, session["id"])])

    return execute("sync", dataclasses.replace(settings, retries=1), Store(engine), body, **how)


@pytest.mark.parametrize("dry_run", [False, True])
def test_an_id_that_fails_then_is_stored_is_not_counted_failed(
    api: FakeSignalWire, settings: Settings, engine: Engine, dry_run: bool
) -> None:
    summary = _fail_then_store(settings, engine, api, dry_run=dry_run)
    assert summary.counts["failed"] == 0 and summary.counts["inserted"] == 1
    assert summary.exit_code == 0 and summary.to_dict()["failed_ids"] == []


def test_a_failure_counts_for_its_run_even_if_another_run_fails_the_same_id(
    api: FakeSignalWire, settings: Settings, engine: Engine
) -> None:
    """The failure ledger holds one row per id, with the latest run: a second run failing the
    same id while the first still runs must not erase the first run's failure."""
    from datetime import UTC, datetime

    from etl.pipeline import Run, execute
    from etl.signalwire import SignalWireClient
    from etl.storage import ledger

    session_id = next(iter(api.sessions))
    api.script(session_id, "422")

    async def body(run: Run, client: SignalWireClient) -> None:
        await run.fetch_ids(client, [session_id])
        other = ledger.start_run(engine, "fetch")  # meanwhile, another process fails it too
        with engine.begin() as conn:
            ledger.record_failures(conn, {session_id: "HTTP 422"}, other, datetime.now(UTC))

    summary = execute("backfill", settings, Store(engine), body)
    assert summary.counts["failed"] == 1 and summary.exit_code == 1
    assert summary.to_dict()["failed_ids"] == [session_id]


def test_the_tally_counts_an_id_failed_twice_once_and_a_settled_one_not_at_all() -> None:
    from etl.pipeline import Summary, Tally

    summary = Summary()
    tally = Tally(summary, progress=None)
    a, b = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"
    tally.asked(2)
    tally.failed(a, "HTTP 500")
    tally.failed(a, "HTTP 502")  # failed again in the same run
    tally.failed(b, "HTTP 500")
    assert summary.counts["failed"] == 2 and summary.failures == {a: "HTTP 502", b: "HTTP 500"}
    tally.settled(b)  # then stored (a list walk brought it)
    assert summary.counts["failed"] == 1 and summary.failures == {a: "HTTP 502"}
    tally.settled(b)  # settling twice undoes nothing more
    assert summary.counts["failed"] == 1 and summary.exit_code == 1
