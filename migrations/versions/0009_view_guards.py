"""Views that bad old rows cannot derail: concurrency_peaks' day series starts no earlier than
2000-01-01 UTC, and a negative member or recording duration is left out of the sums.

0007's view builds one row per UTC day from the earliest interval's start to the latest one's
end. It already clips an end later than now to now; nothing bounded the start, so one stored
`start_time` (or member `join_time`) in the year 1 made the view generate about 740,000 days and
take half a minute on SQLite for every query (and every `report --by day`). A start earlier than
2000-01-01 00:00 UTC now counts from that instant, the same way an absurd end counts until now:
no SignalWire room existed before it, and the series is bounded by about 27 years (under 10,000
rows) whatever is stored. room_peaks has no day series.

A member with `leave_time` before `join_time` (a negative `duration`) or a recording with a
negative duration is refused by today's parser (issue 18), but an older version stored some; the
sums of session_costs and daily_usage added them, so one such row cancelled real
participant-minutes. A negative duration now counts as unknown (left out of the sum, as a null
one is); the peaks already left out an interval that ends before it begins.

Revision ID: 0008
Revises: 0008
Create Date: 2026-12-06
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLOOR = {
    # SQLite stores UTC text 'YYYY-MM-DD HH:MM:SS.ffffff', which sorts as the time it names
    "sqlite": "'2000-01-01 00:00:00.000000'",
    "postgresql": "CAST('2000-01-01 00:00:00+00' AS timestamptz)",
}


def _v7() -> ModuleType:
    """Migration 0007 (its file name is not an importable module name)."""
    path = Path(__file__).with_name("0007_bill_views.py")
    spec = importlib.util.spec_from_file_location(f"roomsync_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


VIEWS = ("session_costs", "daily_usage", "concurrency_peaks")  # room_peaks reads none of them

SUMS = {
    "sum(duration) AS member_seconds": (
        "sum(CASE WHEN duration >= 0 THEN duration END) AS member_seconds"
    ),
    "sum(duration) AS recording_seconds": (
        "sum(CASE WHEN duration >= 0 THEN duration END) AS recording_seconds"
    ),
}


def _views(bounded: bool) -> list[str]:
    """The three views as 0007 made them, or with this migration's two changes."""
    dialect = op.get_context().dialect.name
    v7 = _v7()
    sql = v7._sql(dialect)
    costs: list[str] = [v7._session_costs(sql), v7._daily_usage(sql)]
    statement: str = v7._concurrency_peaks(sql)
    if not bounded:
        return [*costs, statement]
    for old, new in SUMS.items():
        assert all(c.count(old) == 1 for c in costs), "0007's sums changed; update this migration"
        costs = [c.replace(old, new) for c in costs]
    old = "SELECT kind, t0, CASE"
    assert statement.count(old) == 1, "0007's clipped CTE changed; update this migration"
    floor = FLOOR[dialect]
    new = f"SELECT kind, CASE WHEN t0 < {floor} THEN {floor} ELSE t0 END AS t0, CASE"
    return [*costs, statement.replace(old, new)]


def _replace(bounded: bool) -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    for statement in _views(bounded):
        op.execute(statement)


def upgrade() -> None:
    _replace(bounded=True)


def downgrade() -> None:
    _replace(bounded=False)
