"""Unit tests of etl/storage/reporting.py, the SQL half of `report` and `status`: ranges, costs
beyond a double, rounding, the health verdict under an injected clock, and both backends'
answers for an empty and a stale database. (Whole reports: tests/test_report.py,
tests/test_status.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from etl.config import CLOCK_SKEW, GROUPINGS
from etl.errors import DatabaseError
from etl.storage import downgrade, head_revision
from etl.storage.engines import make_engine
from etl.storage.reporting import (
    COST_TOO_LARGE,
    JSON_KEYS,
    ReportRow,
    RunInfo,
    Status,
    check_range,
    finite_cost,
    iso,
    read_status,
    report_rows,
)

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_since_must_be_before_the_exclusive_until() -> None:
    check_range(NOW, NOW + timedelta(seconds=1))
    check_range(None, NOW)
    check_range(NOW, None)
    with pytest.raises(ValueError, match="--until is exclusive"):
        check_range(NOW, NOW)


@pytest.mark.parametrize(
    ("value", "cost"),
    [
        (None, (None, None)),
        (0.1234567, (0.123457, None)),
        ("2.5", (2.5, None)),
        (float("inf"), (None, COST_TOO_LARGE)),
        ("1e400", (None, COST_TOO_LARGE)),  # a numeric sum beyond a double
    ],
)
def test_a_cost_beyond_a_double_is_unknown_with_a_note(value: object, cost: object) -> None:
    assert finite_cost(value) == cost


def test_the_mean_duration_rounds_half_up_as_sql_does() -> None:
    row = ReportRow("2026-11-20", 2, 2, 0, duration_s=3, timed_sessions=2, cost_usd=None)
    assert row.avg_duration_s == 1.5
    row = ReportRow("x", 4, 4, 0, duration_s=1, timed_sessions=4, cost_usd=None)
    assert row.avg_duration_s == 0.3  # 0.25 -> 0.3, not banker's 0.2
    assert ReportRow("x", 1, 0, 1, None, 0, None).avg_duration_s is None
    assert tuple(row.to_dict()) == JSON_KEYS


def test_times_are_shown_in_utc_with_a_z() -> None:
    assert iso(NOW) == "2026-11-20T12:00:00Z"
    assert iso(None) is None


def status(finished_at: datetime | None, now: datetime) -> Status:
    runs = {}
    if finished_at is not None:
        sync = RunInfo(1, "sync", "ok", finished_at - timedelta(minutes=1), finished_at, {}, None)
        runs = {"sync": sync}
    return Status(0, 0, 0, 0, None, runs, dict(runs), "x", "x", now=now)


def test_fresh_means_a_success_within_the_age_and_not_in_the_future() -> None:
    hour = timedelta(hours=1)
    assert status(NOW - hour / 2, NOW).fresh(hour)
    assert not status(NOW - 2 * hour, NOW).fresh(hour)
    assert not status(None, NOW).fresh(hour)
    assert status(NOW + CLOCK_SKEW / 2, NOW).fresh(hour)
    ahead = status(NOW + CLOCK_SKEW + hour, NOW)
    assert not ahead.fresh(hour)
    assert ahead.ledger_ahead() == CLOCK_SKEW + hour
    assert ahead.to_dict()["clock_disagrees"] is True
    assert status(NOW - hour, NOW).ledger_ahead() is None


@pytest.mark.parametrize("by", GROUPINGS)
def test_an_empty_database_reports_no_rows(engine: Engine, by: str) -> None:
    assert report_rows(engine, by) == []


def test_an_empty_database_has_an_empty_status(engine: Engine) -> None:
    found = read_status(engine, NOW)
    assert (found.sessions, found.live, found.failing_ids, found.awaiting_final_cost) == (
        0,
        0,
        0,
        0,
    )
    assert found.newest_session is None and found.runs == {} and found.now == NOW
    assert found.revision == found.head == head_revision()


def test_status_refuses_a_database_behind_the_head(migrated_url: str) -> None:
    downgrade(migrated_url, "-1")
    engine = make_engine(migrated_url)
    try:
        with pytest.raises(DatabaseError, match="run `roomsync db upgrade`"):
            read_status(engine, NOW)
    finally:
        engine.dispose()
