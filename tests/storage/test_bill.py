"""Storage of the rest of the bill (etl/storage/bill.py) on SQLite and PostgreSQL: upserts with
newest-wins and unchanged detection, deleted log entries, rooms gone from the list, the detail
state and its rule, the detail failure ledger, cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl.bill_records import parse_member, parse_recording, parse_room, parse_video_log
from etl.fake_api import generate_account
from etl.outcomes import Outcome
from etl.records import parse_session
from etl.storage import Store
from etl.storage.bill import MEMBERS, RECORDINGS, Detail
from etl.storage.schema import (
    room_recordings,
    room_session_members,
    rooms,
    sync_detail_failures,
    video_charges,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=10)  # a write at NOW is an insert: first_synced_at == now
SETTLE = timedelta(days=7)
ACCOUNT = generate_account(30, seed=3)


def one(engine: Engine, table: sa.Table, row_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(table).where(table.c.id == row_id)).one()._mapping)


def completed_with(kind: str) -> dict[str, Any]:
    """A completed session of the account that has at least one item of `kind`."""
    source = ACCOUNT.members if kind == MEMBERS else ACCOUNT.recordings
    return next(s for s in ACCOUNT.sessions if s["status"] == "completed" and source[s["id"]])


def store_sessions(engine: Engine, sessions: list[dict[str, Any]]) -> None:
    Store(engine).write_batch([parse_session(s, s["id"]) for s in sessions], NOW)


def test_rooms_insert_unchanged_newer_wins_older_loses(engine: Engine) -> None:
    store = Store(engine)
    parsed = [parse_room(r) for r in ACCOUNT.rooms]
    first = store.write_rooms(parsed, NOW)
    assert set(first.outcomes.values()) == {Outcome.INSERTED}
    again = store.write_rooms(parsed, NOW + timedelta(minutes=1))
    assert set(again.outcomes.values()) == {Outcome.UNCHANGED}
    room = ACCOUNT.rooms[0]
    later = datetime.fromisoformat(room["updated_at"].replace("Z", "+00:00")) + timedelta(hours=1)
    newer = parse_room(room | {"updated_at": later.isoformat(), "display_name": "New"})
    assert store.write_rooms([newer], LATER).outcomes == {newer["id"]: Outcome.UPDATED}
    older = parse_room(room | {"display_name": "Old"})
    assert store.write_rooms([older], LATER).outcomes == {older["id"]: Outcome.UNCHANGED}
    stored = one(engine, rooms, room["id"])
    assert stored["display_name"] == "New" and stored["meta"] == room["meta"]


def test_rooms_gone_from_a_complete_walk_are_marked_and_come_back(engine: Engine) -> None:
    store = Store(engine)
    parsed = [parse_room(r) for r in ACCOUNT.rooms]
    store.write_rooms(parsed, NOW)
    kept = {r["id"] for r in parsed[1:]}
    assert store.mark_rooms_gone(kept, NOW) == 1
    assert one(engine, rooms, parsed[0]["id"])["deleted_at"] == NOW
    assert one(engine, rooms, parsed[1]["id"])["deleted_at"] is None
    assert store.mark_rooms_gone(kept, NOW + timedelta(hours=1)) == 0  # the first date stays
    back = store.write_rooms([parsed[0]], NOW + timedelta(hours=2))
    assert back.outcomes == {parsed[0]["id"]: Outcome.UPDATED}
    assert one(engine, rooms, parsed[0]["id"])["deleted_at"] is None


def test_a_deleted_log_entry_sets_only_discarded_at_and_a_returning_one_clears_it(
    engine: Engine,
) -> None:
    store = Store(engine)
    entry = ACCOUNT.logs[0]
    live = parse_video_log(entry)
    assert store.write_charges([live], NOW).outcomes == {entry["id"]: Outcome.INSERTED}
    gone_at = "2026-11-26T00:00:00Z"
    deleted = parse_video_log(
        {"id": entry["id"], "discarded_at": gone_at, "created_at": entry["created_at"]}
    )
    assert store.write_charges([deleted], LATER).outcomes == {entry["id"]: Outcome.UPDATED}
    row = one(engine, video_charges, entry["id"])
    assert row["discarded_at"] == datetime(2026, 11, 26, tzinfo=UTC)
    assert row["charge"] == live["charge"] and row["url"] == live["url"]
    assert row["raw"] == entry  # the body stays as it was
    assert store.write_charges([deleted], LATER).outcomes == {entry["id"]: Outcome.UNCHANGED}
    assert store.write_charges([live], LATER).outcomes == {entry["id"]: Outcome.UPDATED}
    assert one(engine, video_charges, entry["id"])["discarded_at"] is None
    assert store.write_charges([live], LATER).outcomes == {entry["id"]: Outcome.UNCHANGED}


def test_a_log_entry_first_seen_deleted_is_kept_with_its_date(engine: Engine) -> None:
    store = Store(engine)
    body = {
        "id": "0b6f1c36-5a3e-4d1d-9a59-2f0d7e1c8a11",
        "discarded_at": "2026-11-20T10:00:00Z",
        "created_at": "2026-11-19T10:00:00Z",
    }
    assert set(store.write_charges([parse_video_log(body)], NOW).outcomes.values()) == {
        Outcome.INSERTED
    }
    row = one(engine, video_charges, body["id"])
    assert row["charge"] is None and row["discarded_at"] is not None and row["raw"] == body


def test_charge_changes_are_updates(engine: Engine) -> None:
    store = Store(engine)
    entry = ACCOUNT.logs[1]
    store.write_charges([parse_video_log(entry)], NOW)
    more = parse_video_log(entry | {"charge": 99.5, "status": "completed"})
    assert store.write_charges([more], LATER).outcomes == {entry["id"]: Outcome.UPDATED}
    assert one(engine, video_charges, entry["id"])["charge"] == 99.5


def test_details_written_with_their_state_and_ledger(engine: Engine) -> None:
    store = Store(engine)
    session = completed_with(RECORDINGS)
    sid = session["id"]
    store_sessions(engine, [session])
    assert store.detail_due({MEMBERS, RECORDINGS}, NOW, SETTLE) == {sid: {MEMBERS, RECORDINGS}}
    run_id = store.start_run("sync")
    store.record_detail_failures({(sid, MEMBERS): "HTTP 500: boom"}, run_id, NOW)
    assert store.pending_detail_failures() == [(sid, MEMBERS)]
    members = [parse_member(m, sid) for m in ACCOUNT.members[sid]]
    recordings = [parse_recording(r, sid) for r in ACCOUNT.recordings[sid]]
    written = store.write_details(
        [Detail(sid, MEMBERS, members, True), Detail(sid, RECORDINGS, recordings, False)],
        NOW,
        run_id=run_id,
    )
    assert written.items[MEMBERS][str(Outcome.INSERTED)] == len(members)
    assert written.items[RECORDINGS][str(Outcome.INSERTED)] == len(recordings)
    assert store.pending_detail_failures() == []
    # members are final: never due again; recordings not final: due while the session is recent
    recent = datetime.fromisoformat(session["end_time"].replace("Z", "+00:00"))
    assert store.detail_due({MEMBERS, RECORDINGS}, recent, SETTLE) == {sid: {RECORDINGS}}
    assert store.detail_due({MEMBERS, RECORDINGS}, recent + SETTLE * 2, SETTLE) == {}
    assert store.detail_due({MEMBERS}, recent, SETTLE, [sid], refresh=True) == {sid: {MEMBERS}}
    with engine.connect() as conn:
        uris = conn.execute(sa.select(room_recordings.c.raw)).scalars().all()
    assert all("uri" not in raw for raw in uris)


def test_live_and_deleted_sessions_are_not_due(engine: Engine) -> None:
    store = Store(engine)
    live = next(s for s in ACCOUNT.sessions if s["status"] == "in-progress")
    done = [s for s in ACCOUNT.sessions if s["status"] == "completed"][:2]
    store_sessions(engine, [live, *done])
    store.write_batch([], NOW, gone=[done[1]["id"]])
    assert set(store.detail_due({MEMBERS}, NOW, SETTLE)) == {done[0]["id"]}
    assert store.detail_due(set(), NOW, SETTLE) == {}


def test_identical_details_are_unchanged_and_members_latest_wins(engine: Engine) -> None:
    store = Store(engine)
    session = completed_with(MEMBERS)
    sid = session["id"]
    members = [parse_member(m, sid) for m in ACCOUNT.members[sid]]
    store.write_details([Detail(sid, MEMBERS, members, True)], NOW)
    again = store.write_details([Detail(sid, MEMBERS, members, True)], LATER)
    assert set(again.items[MEMBERS]) == {str(Outcome.UNCHANGED)}
    renamed = parse_member(ACCOUNT.members[sid][0] | {"name": "Someone Else"}, sid)
    changed = store.write_details([Detail(sid, MEMBERS, [renamed], True)], LATER)
    assert changed.items[MEMBERS] == {str(Outcome.UPDATED): 1}
    assert one(engine, room_session_members, renamed["id"])["name"] == "Someone Else"


def test_a_detail_the_database_refuses_fails_alone(engine: Engine) -> None:
    """A member the database cannot hold (a duration beyond its integer column) fails that
    session's members only: the other session's members are written, the ledger says why."""
    store = Store(engine)
    sessions = [s for s in ACCOUNT.sessions if s["status"] == "completed"][:2]
    good, bad = sessions
    good_rows = [parse_member(m, good["id"]) for m in ACCOUNT.members[good["id"]]]
    bad_rows = [parse_member(m, bad["id"]) for m in ACCOUNT.members[bad["id"]]]
    bad_rows[0] = {**bad_rows[0], "duration": 2**64}  # past the parser: the safety net
    run_id = store.start_run("sync")
    written = store.write_details(
        [Detail(good["id"], MEMBERS, good_rows, True), Detail(bad["id"], MEMBERS, bad_rows, True)],
        NOW,
        run_id=run_id,
    )
    assert set(written.refused) == {(bad["id"], MEMBERS)}
    assert "refused" in written.refused[(bad["id"], MEMBERS)]
    assert written.items[MEMBERS][str(Outcome.INSERTED)] == len(good_rows)
    with engine.connect() as conn:
        ledger = conn.execute(sa.select(sync_detail_failures.c.session_id)).scalars().all()
        stored = conn.execute(sa.select(room_session_members.c.room_session_id)).scalars().all()
    assert [str(i) for i in ledger] == [bad["id"]]
    assert {str(i) for i in stored} == {good["id"]}


def test_cursor_and_oldest_open_charge(engine: Engine) -> None:
    store = Store(engine)
    assert store.cursor("charges") is None
    store.set_cursor("charges", NOW, NOW)
    store.set_cursor("charges", NOW + timedelta(hours=1), NOW)
    assert store.cursor("charges") == NOW + timedelta(hours=1)
    store.set_cursor("charges", NOW + timedelta(hours=2), NOW, dry_run=True)
    assert store.cursor("charges") == NOW + timedelta(hours=1)
    live = [e for e in ACCOUNT.logs if e["status"] != "completed"]  # in progress or null
    store.write_charges([parse_video_log(e) for e in ACCOUNT.logs], NOW)
    oldest = min(datetime.fromisoformat(e["created_at"].replace("Z", "+00:00")) for e in live)
    assert store.oldest_open_charge(datetime(2000, 1, 1, tzinfo=UTC)) == oldest
    assert store.oldest_open_charge(oldest + timedelta(days=365)) is None


def test_batches_of_every_size_run_a_few_statement_texts(engine: Engine) -> None:
    """The driver keeps every statement text it runs prepared, one cache per connection: an
    upsert whose text changed with the batch's row count filled them with large statements
    run once (a first sync's memory grew with the account). Batches of 1 to 70 rows write every
    row with its outcome, through at most 7 texts (64 rows a statement, halves for the rest)."""
    logs = [parse_video_log(e) for e in generate_account(80, seed=4).logs if "charge" in e]
    live = sorted((r for r in logs if r["discarded_at"] is None), key=lambda r: r["id"])[:70]
    assert len(live) == 70
    texts: set[str] = set()

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO video_charges"):
            texts.add(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        store = Store(engine)
        for n in range(1, len(live) + 1):
            written = store.write_charges(live[:n], NOW + timedelta(seconds=n))
            assert written.outcomes == {
                **{r["id"]: Outcome.UNCHANGED for r in live[: n - 1]},
                live[n - 1]["id"]: Outcome.INSERTED,
            }
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert 1 < len(texts) <= 7
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(video_charges)).scalar_one()
    assert stored == len(live)
