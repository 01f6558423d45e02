"""What the table still waits for (etl/storage/backlog.py), on both backends: live rows,
rows waiting for their final cost, exact rows; deleted rows are none of these."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from etl.fake_api import generate_sessions
from etl.records import parse_session
from etl.storage import OpenRow, backlog
from etl.storage.sessions import write_batch

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(day: int) -> str:
    return (T0 + timedelta(days=day)).isoformat().replace("+00:00", "Z")


def payload(seed: int, day: int, status: str | None, cost: float | None) -> dict[str, Any]:
    base = generate_sessions(1, seed=seed)[0]
    return base | {
        "status": status,
        "cost_in_dollars": cost,
        "created_at": at(day),
        "start_time": at(day),
        "updated_at": at(day + 1),
    }


@pytest.fixture
def four(engine: Engine) -> dict[str, str]:
    """One session of each kind, created a day apart: live (day 0), waiting for its final cost
    (day 1), exact (day 2), live but deleted upstream (day 3)."""
    kinds = {
        "live": payload(1, 0, "in-progress", None),
        "pending": payload(2, 1, "completed", 0.25),  # by id: its cost is not final
        "exact": payload(3, 2, "completed", 0.5),  # listed completed: final
        "deleted": payload(4, 3, "in-progress", None),
    }
    rows = [parse_session(p, p["id"]) for p in kinds.values()]
    ids = {kind: p["id"] for kind, p in kinds.items()}
    write_batch(engine, rows, NOW, listed={ids["exact"]})
    write_batch(engine, [], NOW, gone=[ids["deleted"]])
    return ids


def test_open_rows_are_live_and_pending_ones_oldest_first(
    engine: Engine, four: dict[str, str]
) -> None:
    assert backlog.open_rows(engine) == [
        OpenRow(four["live"], T0, live=True),
        OpenRow(four["pending"], T0 + timedelta(days=1), live=False),
    ]


def test_counts_leave_deleted_sessions_out(engine: Engine, four: dict[str, str]) -> None:
    assert backlog.live_count(engine) == 1
    assert backlog.count_since(engine, T0) == 3
    assert backlog.count_since(engine, T0 + timedelta(days=1)) == 2
    assert backlog.count_since(engine, T0 + timedelta(days=3)) == 0  # the deleted one


def test_exact_ids_across_many_chunks(engine: Engine, four: dict[str, str]) -> None:
    unknown = [str(uuid.UUID(int=n)) for n in range(1, 1201)]  # more than two chunks of 500
    asked = [*unknown[:600], *four.values(), *unknown[600:]]
    assert backlog.exact_ids(engine, asked) == {four["exact"]}
    assert backlog.exact_ids(engine, []) == set()


def test_an_empty_table_waits_for_nothing(engine: Engine) -> None:
    assert backlog.open_rows(engine) == []
    assert backlog.live_count(engine) == 0 and backlog.count_since(engine, T0) == 0
