"""Fetching the rest of the bill (etl/bill_sync.py) over real loopback HTTP from the stand-in,
into both backends: details once and again only while they can change, the detail failure
ledger under hostile answers, rooms gone from the list, charges with deleted entries and the
overlap that re-reads entries whose charge changes when their session ends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import PROJECT, TOKEN, make_settings

from etl.bill_sync import BillFetch
from etl.config import Settings
from etl.errors import AuthError
from etl.fake_api import LIST_PATH, FakeSignalWire, generate_account
from etl.fake_api import data as fake_data
from etl.records import parse_session
from etl.signalwire import SignalWireClient
from etl.storage import Store
from etl.storage.schema import (
    room_recordings,
    room_session_members,
    rooms,
    sync_detail_failures,
    video_charges,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
EVERYTHING = ("members", "recordings", "rooms", "charges")


@pytest.fixture
def fake() -> Iterator[FakeSignalWire]:
    account = generate_account(40, seed=5, now=T0)
    with FakeSignalWire(project_id=PROJECT, token=TOKEN, account=account) as server:
        yield server


@pytest.fixture
def store(migrated_url: str) -> Iterator[Store]:
    with Store.open(migrated_url) as opened:
        yield opened


def store_sessions(store: Store, fake: FakeSignalWire) -> None:
    rows = [parse_session(s, s["id"]) for s in fake.sessions.values()]
    store.write_batch(rows, datetime.now(UTC))


def run_bill(
    store: Store,
    settings: Settings,
    *,
    parts: tuple[str, ...] = EVERYTHING,
    overlap: timedelta = timedelta(hours=1),
    run_id: int | None = None,
    clock: datetime | None = None,
) -> tuple[BillFetch, int]:
    """One pass over the bill as a sync does it; returns it and the requests it made."""
    if run_id is None:
        run_id = store.start_run("sync")

    async def go() -> tuple[BillFetch, int]:
        async with SignalWireClient(settings) as client:
            fetch = BillFetch(
                store,
                client,
                parts=parts,
                run_id=run_id,
                concurrency=4,
                batch_size=50,
                clock=(lambda: clock) if clock is not None else lambda: datetime.now(UTC),
            )
            await fetch.fetch_details(fetch.due())
            if "rooms" in parts:
                await fetch.sync_rooms()
            if "charges" in parts:
                await fetch.sync_charges(overlap)
            return fetch, sum(client.stats.requests.values())

    return asyncio.run(go())


def count(store: Store, table: sa.Table, *where: Any) -> int:
    with store.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(table)
        return int(conn.execute(query.where(*where) if where else query).scalar_one())


def completed(fake: FakeSignalWire) -> list[str]:
    return sorted(i for i, s in fake.sessions.items() if s["status"] == "completed")


def test_everything_once_then_nothing_but_the_walks(fake: FakeSignalWire, store: Store) -> None:
    settings = make_settings(fake, store.url)
    store_sessions(store, fake)
    first, requests = run_bill(store, settings)
    done = completed(fake)
    assert first.summary.detail_failed == 0 and not first.summary.errors
    members = sum(len(fake.members[i]) for i in done)
    recordings = sum(len(fake.recordings[i]) for i in done)
    assert count(store, room_session_members) == members
    assert count(store, room_recordings) == recordings
    assert count(store, rooms) == len(fake.rooms)
    assert count(store, video_charges) == len(fake.logs)
    assert count(store, video_charges, video_charges.c.discarded_at.is_not(None)) == len(
        fake.discarded_logs
    )
    # one members and one recordings request per completed session, one rooms page, one logs page
    assert requests == 2 * len(done) + 2
    with store.engine.connect() as conn:
        raws = conn.execute(sa.select(room_recordings.c.raw)).scalars().all()
    assert all("uri" not in raw for raw in raws)  # the signed link is never stored
    again, requests = run_bill(store, settings)
    assert again.summary.details_asked == 0  # every detail fetched final
    assert requests == 2  # the rooms walk and the logs walk
    assert again.summary.items["charges"]["unchanged"] == again.summary.items["charges"].total()


def test_a_detail_still_changing_is_asked_again_until_final(
    fake: FakeSignalWire, store: Store
) -> None:
    settings = make_settings(fake, store.url)
    store_sessions(store, fake)
    sid = completed(fake)[0]
    now = fake_data.parse_time(fake.sessions[sid]["end_time"])
    recording = fake.add_recording(sid, at=now - timedelta(minutes=5))
    fake.finish_recording(recording["id"], at=now, processing=True)
    run_bill(store, settings, parts=("members", "recordings"), clock=now)
    second, _ = run_bill(store, settings, parts=("members", "recordings"), clock=now)
    assert second.summary.details_asked == 1  # the recordings of that session only
    fake.finish_recording(recording["id"], at=now)
    run_bill(store, settings, parts=("members", "recordings"), clock=now)
    with store.engine.connect() as conn:
        status = conn.execute(
            sa.select(room_recordings.c.status).where(room_recordings.c.id == recording["id"])
        ).scalar_one()
    assert status == "completed"
    last, _ = run_bill(store, settings, parts=("members", "recordings"), clock=now)
    assert last.summary.details_asked == 0


def test_hostile_details_cost_their_session_only_and_are_retried(
    fake: FakeSignalWire, store: Store
) -> None:
    """A 500 forever on one session's members, a poison member body on another, an endless
    walk on a third: each fails that detail only, with its reason in the ledger; every other
    detail is stored, the session rows stay; the next run asks again and clears them."""
    settings = make_settings(fake, store.url, retries=2, max_pages=1)
    store_sessions(store, fake)
    broken, poison, endless, *rest = completed(fake)
    fake.script_path(f"{LIST_PATH}/{broken}/members", "500", "500")  # every attempt
    fake.members[poison][0]["duration"] = -5  # a negative duration breaks the spec
    extra = [
        fake_data.new_member(str(uuid.uuid4()), endless, "guest", T0 - timedelta(hours=1))
        for _ in range(1001)
    ]
    fake.members[endless].extend(extra)  # more than one page of 1000: past --max-pages 1
    first, _ = run_bill(store, settings, parts=("members", "recordings"))
    assert first.summary.detail_failed == 3
    reasons = first.summary.detail_failures
    assert "HTTP 500" in reasons[f"{broken} members"]
    assert "duration" in reasons[f"{poison} members"] and "negative" in reasons[f"{poison} members"]
    assert "--max-pages" in reasons[f"{endless} members"]
    with store.engine.connect() as conn:
        ledger = {
            (str(r.session_id), r.detail): r.error
            for r in conn.execute(sa.select(sync_detail_failures))
        }
        sessions_with_members = {
            str(i)
            for i in conn.execute(sa.select(room_session_members.c.room_session_id)).scalars()
        }
    assert set(ledger) == {(broken, "members"), (poison, "members"), (endless, "members")}
    assert set(rest) <= sessions_with_members  # every other session's members are stored
    assert not {broken, poison, endless} & sessions_with_members
    assert count(store, room_recordings) == sum(len(fake.recordings[i]) for i in completed(fake))
    # the next run retries exactly those three (the fault is used up, the bodies are fixed)
    fake.members[poison][0]["duration"] = 5
    del fake.members[endless][-1001:]
    second, requests = run_bill(store, settings, parts=("members", "recordings"))
    assert second.summary.details_asked == 3 and second.summary.detail_failed == 0
    assert requests == 3
    assert store.pending_detail_failures() == []


def test_an_auth_failure_stops_the_run(fake: FakeSignalWire, store: Store) -> None:
    store_sessions(store, fake)
    settings = make_settings(fake, store.url, api_token="wrong")
    with pytest.raises(AuthError):
        run_bill(store, settings, parts=("members",))


def test_rooms_gone_from_the_list_are_marked(fake: FakeSignalWire, store: Store) -> None:
    settings = make_settings(fake, store.url)
    run_bill(store, settings, parts=("rooms",))
    gone = next(iter(fake.rooms))
    fake.delete_room(gone)
    second, _ = run_bill(store, settings, parts=("rooms",))
    assert second.summary.rooms_gone == 1
    assert count(store, rooms, rooms.c.deleted_at.is_not(None)) == 1
    # a walk that breaks marks nothing
    fake.script_path("/api/video/rooms", *["500"] * 10)
    third, _ = run_bill(store, make_settings(fake, store.url, retries=1), parts=("rooms",))
    assert third.summary.errors and third.summary.rooms_gone == 0


def test_charges_window_reaches_back_to_entries_that_can_change(
    fake: FakeSignalWire, store: Store
) -> None:
    """The logs are read after the previous walk's newest entry less the overlap, and back to
    the oldest stored entry not completed: a session that ends late changes its entry, dated
    at the session's creation, and the next sync stores the new charge."""
    settings = make_settings(fake, store.url)
    store_sessions(store, fake)
    run_bill(store, settings, parts=("charges",), clock=T0)
    live = next(i for i, s in fake.sessions.items() if s["status"] == "in-progress")
    entry = fake.log_of(live)
    assert entry is not None and entry["charge"] == 0
    fake.complete_session(live, at=T0)
    assert entry["charge"] > 0
    deleted = next(e for e in fake.logs if e not in fake.discarded_logs and e != entry["id"])
    fake.delete_log(deleted, at=T0)
    run_bill(store, settings, parts=("charges",), clock=T0)
    with store.engine.connect() as conn:
        charge = conn.execute(
            sa.select(video_charges.c.charge).where(video_charges.c.id == entry["id"])
        ).scalar_one()
        discarded = conn.execute(
            sa.select(video_charges.c.discarded_at).where(video_charges.c.id == deleted)
        ).scalar_one()
    assert charge == entry["charge"]
    assert discarded == T0  # deleted after it was stored: seen through include_deleted
    assert store.cursor("charges") is not None


@pytest.mark.parametrize("page_size", [1, 3, 0])  # 0: the number of completed sessions
def test_the_paged_walk_asks_for_what_is_due_once_each(
    fake: FakeSignalWire, store: Store, page_size: int
) -> None:
    """A sync reads the due sessions a page at a time (fetch_due): it asks for exactly what
    `due()` over the whole account names -- the rule's details and the ledger's failed ones,
    merged per session -- each once, whatever the page size, a full last page included."""
    settings = make_settings(fake, store.url, retries=1)
    store_sessions(store, fake)
    broken, final, *_ = done = completed(fake)
    fake.script_path(f"{LIST_PATH}/{broken}/members", "500")  # one attempt (retries=1)
    run_bill(store, settings, parts=("members",))  # recordings never fetched: due by the rule
    run_id = store.start_run("sync")
    store.record_detail_failures({(final, "members"): "HTTP 500"}, run_id, datetime.now(UTC))

    async def go() -> tuple[BillFetch, dict[str, set[str]]]:
        async with SignalWireClient(settings) as client:
            fetch = BillFetch(
                store, client, parts=("members", "recordings"), run_id=run_id,
                concurrency=2, batch_size=4,
            )  # fmt: skip
            expected = fetch.due()
            fake.reset_stats()
            await fetch.fetch_due(page_size or len(done))
            return fetch, expected

    fetch, expected = asyncio.run(go())
    # the ledger's members of a session fetched final, and the failed one's members, are due
    assert expected[final] == {"members", "recordings"} and "members" in expected[broken]
    asked = {f"{LIST_PATH}/{sid}/{kind}": 1 for sid, kinds in expected.items() for kind in kinds}
    assert dict(fake.requests) == asked
    assert fetch.summary.details_asked == len(asked) and fetch.summary.detail_failed == 0
    assert store.pending_detail_failures() == []
