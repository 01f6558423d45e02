"""RFC 3339 timestamps in every form the spec allows, fetched over loopback and stored on both
backends (issue 22, defect 9)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from conftest import PROJECT, TOKEN, make_settings
from sqlalchemy.engine import Engine

from etl import api
from etl.fake_api import FakeSignalWire, generate_sessions
from etl.storage.schema import room_sessions, sync_failures


def test_lower_case_and_leap_second_timestamps_are_stored_exactly(
    migrated_url: str, engine: Engine
) -> None:
    sessions = generate_sessions(3, seed=9)
    lower, leap, unstorable = sessions
    lower.update(created_at="2025-03-11t01:49:51.123456789z", updated_at="2025-03-11t02:00:00z")
    leap.update(created_at="2016-12-31T23:59:60Z", updated_at="2017-01-01T05:29:60+05:30")
    unstorable.update(end_time="9999-12-31T23:00:00-01:00")
    with FakeSignalWire(sessions, project_id=PROJECT, token=TOKEN) as server:
        summary = api.backfill(
            [s["id"] for s in sessions], make_settings(server, migrated_url, retries=1)
        )
    assert summary["inserted"] == 2 and summary["failed_ids"] == [unstorable["id"]]
    with engine.connect() as conn:
        stored = {str(r.id): r for r in conn.execute(sa.select(room_sessions)).all()}
        reason = conn.execute(sa.select(sync_failures.c.error)).scalar_one()
    assert stored[lower["id"]].created_at == datetime(2025, 3, 11, 1, 49, 51, 123456, UTC)
    assert stored[lower["id"]].updated_at == datetime(2025, 3, 11, 2, tzinfo=UTC)
    assert (
        stored[leap["id"]].created_at
        == stored[leap["id"]].updated_at
        == datetime(2017, 1, 1, tzinfo=UTC)
    )
    raw: dict[str, Any] = stored[lower["id"]].raw
    assert raw["created_at"] == "2025-03-11t01:49:51.123456789z"  # the body as it came
    assert "'end_time'" in reason and "cannot be stored" in reason and "ISO 8601" not in reason
