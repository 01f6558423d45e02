"""A stand-in account (etl.fake_api.generate_account) stored the way a sync stores it: sessions
through the session upsert (listed, so a completed session's cost is final), members,
recordings, rooms and log entries through their parsers into the tables of migration 0006.

Until the bill's own upserts land, the detail rows are inserted directly; what the views and
reports read is the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl.bill_records import parse_member, parse_recording, parse_room, parse_video_log
from etl.fake_api import VideoAccount
from etl.records import parse_session
from etl.storage.schema import room_recordings, room_session_members, rooms, video_charges
from etl.storage.sessions import write_batch

SYNCED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _synced(row: Mapping[str, Any]) -> dict[str, Any]:
    return {**row, "first_synced_at": SYNCED, "last_synced_at": SYNCED}


def store_sessions(engine: Engine, payloads: Iterable[Mapping[str, Any]]) -> None:
    items = list(payloads)
    rows = [parse_session(dict(p), p["id"]) for p in items]
    write_batch(engine, rows, SYNCED, listed={p["id"] for p in items})


def insert(engine: Engine, table: sa.Table, rows: Iterable[Mapping[str, Any]]) -> None:
    values = [_synced(row) for row in rows]
    if values:
        with engine.begin() as conn:
            conn.execute(table.insert(), values)


def store_account(engine: Engine, account: VideoAccount) -> None:
    store_sessions(engine, account.sessions)
    insert(
        engine,
        room_session_members,
        (parse_member(m, sid) for sid, ms in account.members.items() for m in ms),
    )
    insert(
        engine,
        room_recordings,
        (parse_recording(r, sid) for sid, rs in account.recordings.items() for r in rs),
    )
    insert(engine, rooms, (parse_room(r) for r in account.rooms))
    charges = []
    for entry in account.logs:
        row = dict(parse_video_log(entry))
        gone = account.discarded_logs.get(entry["id"])
        if gone is not None:
            row["discarded_at"] = datetime.fromisoformat(gone.replace("Z", "+00:00"))
        charges.append(row)
    insert(engine, video_charges, charges)
