"""`roomsync report` with the rest of the bill: participant-minutes, cost by source and peaks,
by day, month, room and session, in every text format; both backends. Expected figures are
computed in plain Python from the stand-in account that was stored (tests/test_bill_views.py
holds the reference computations)."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

import pytest
from bill_data import store_account
from click.testing import Result
from conftest import run_roomsync
from sqlalchemy.engine import Engine
from test_bill_views import (
    DELETED_INDEX,
    expected_concurrency,
    expected_room_peaks,
    moment,
    per_session,
)

from etl.config import GROUPINGS
from etl.fake_api import VideoAccount, generate_account
from etl.storage.reporting import JSON_KEYS, report_rows
from etl.storage.schema import room_sessions

Row = dict[str, Any]
BILL_KEYS = ("participant_minutes", "member_cost_usd", "recording_cost_usd", "charge_usd")


@pytest.fixture(scope="module")
def account() -> VideoAccount:
    return generate_account(60, seed=22)


@pytest.fixture
def loaded(engine: Engine, account: VideoAccount) -> Engine:
    store_account(engine, account)
    with engine.begin() as conn:
        conn.execute(
            room_sessions.update()
            .where(room_sessions.c.id == account.sessions[DELETED_INDEX]["id"])
            .values(deleted_at=datetime(2026, 11, 2, tzinfo=UTC))
        )
    return engine


def _sum(values: list[Any]) -> Any:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _label(p: Row, by: str) -> str:
    at = moment(p["start_time"] or p["created_at"])
    assert at is not None
    if by == "day":
        return at.date().isoformat()
    if by == "month":
        return f"{at:%Y-%m}"
    name = p["display_name"] or p["name"]
    return f"{name} ({p['id']})" if name else p["id"]


def expected_bill(account: VideoAccount, by: str) -> dict[str, Row]:
    figures = per_session(account)
    groups: dict[str, list[Row]] = defaultdict(list)
    for p in account.sessions:
        groups[_label(p, by)].append(figures[p["id"]])
    return {
        group: {
            "participant_minutes": None
            if _sum([s["member_seconds"] for s in ss]) is None
            else _sum([s["member_seconds"] for s in ss]) / 60,
            "member_cost_usd": _sum([s["member_cost"] for s in ss]),
            "recording_cost_usd": _sum([s["recording_cost"] for s in ss]),
            "charge_usd": _sum([s["charge"] for s in ss]),
        }
        for group, ss in groups.items()
    }


def assert_close(actual: Row, expected: Row, where: str) -> None:
    for key, value in expected.items():
        if value is None:
            assert actual[key] is None, (where, key)
        else:
            assert actual[key] == pytest.approx(value, abs=1e-6), (where, key)


@pytest.mark.parametrize("by", ["day", "month", "session"])
def test_bill_columns_match_the_account(loaded: Engine, account: VideoAccount, by: str) -> None:
    rows = {r.group: r.to_dict() for r in report_rows(loaded, by)}
    expected = expected_bill(account, by)
    assert set(rows) == set(expected)
    for group, want in expected.items():
        assert_close(rows[group], want, group)
    assert any(r["charge_usd"] for r in rows.values())


def test_sessions_come_in_time_order(loaded: Engine, account: VideoAccount) -> None:
    rows = report_rows(loaded, "session")
    assert len(rows) == len(account.sessions) and all(r.sessions == 1 for r in rows)
    moments = [r.moment for r in rows]
    assert all(m is not None for m in moments) and moments == sorted(moments)  # type: ignore[type-var]
    by_id = {r.key: r for r in rows}
    deleted = account.sessions[DELETED_INDEX]["id"]
    assert by_id[deleted].deleted == 1


def test_peaks_by_day_month_and_room(loaded: Engine, account: VideoAccount) -> None:
    now = datetime.now(UTC)
    peaks = expected_concurrency(account, now)
    days = {r.group: r for r in report_rows(loaded, "day")}
    for label, row in days.items():
        want = peaks.get(date.fromisoformat(label))
        assert row.peak_sessions == (want["peak_sessions"] if want else 0), label
        assert row.peak_members == (want["peak_members"] if want else 0), label
    months: dict[str, int] = defaultdict(int)
    for day, want in peaks.items():
        months[f"{day:%Y-%m}"] = max(months[f"{day:%Y-%m}"], want["peak_members"])
    for row in report_rows(loaded, "month"):
        assert row.peak_members == months[row.group], row.group
    rooms = expected_room_peaks(account, now)
    by_room = report_rows(loaded, "room")
    with_peak = [r for r in by_room if r.peak_members is not None]
    assert with_peak
    newest_name = {}
    for p in sorted(account.sessions, key=lambda p: moment(p["created_at"]) or now):
        if p["room_id"]:
            newest_name[p["room_id"]] = p["name"]
    for row in with_peak:
        want = rooms[newest_name[row.key]]
        assert (row.peak_members, row.max_members) == (want["peak_members"], want["max_members"])


def test_a_day_range_keeps_its_own_peaks(loaded: Engine, account: VideoAccount) -> None:
    rows = report_rows(loaded, "day")
    since = datetime.fromisoformat(rows[len(rows) // 2].group).replace(tzinfo=UTC)
    ranged = report_rows(loaded, "day", since=since)
    whole = {r.group: r for r in rows}
    assert ranged and all(r.peak_members == whole[r.group].peak_members for r in ranged)


def run_cli(args: list[str], url: str) -> Result:
    return run_roomsync(["report", *args], {"DATABASE_URL": url})


def test_every_format_shows_the_bill(loaded: Engine, migrated_url: str) -> None:
    assert "session" in GROUPINGS
    for by in GROUPINGS:
        rows = [r.to_dict() for r in report_rows(loaded, by)]
        as_json = run_cli(["--by", by, "--format", "json"], migrated_url)
        assert as_json.exit_code == 0, as_json.output
        parsed = json.loads(as_json.stdout)
        assert [list(r) for r in parsed] == [list(JSON_KEYS)] * len(rows)
        assert [r["group"] for r in parsed] == [r["group"] for r in rows]
        for got, want in zip(parsed, rows, strict=True):
            for key in (*BILL_KEYS, "peak_sessions", "peak_members", "max_members"):
                assert got[key] == (None if want[key] is None else pytest.approx(want[key]))
        as_csv = run_cli(["--by", by, "--format", "csv"], migrated_url)
        table = list(csv.DictReader(io.StringIO(as_csv.stdout)))
        assert [r["group"] for r in table] == [str(r["group"]) for r in rows]
        for got, want in zip(table, rows, strict=True):
            for key in BILL_KEYS:
                assert (got[key] == "") == (want[key] is None)
                if want[key] is not None:
                    assert float(got[key]) == pytest.approx(want[key])
    text = run_cli(["--by", "day"], migrated_url).stdout
    header = text.splitlines()[0]
    for heading in ("part. min", "members USD", "rec. USD", "charges USD", "peak members"):
        assert heading in header
    room = run_cli(["--by", "room"], migrated_url).stdout
    assert any("/" in line.split()[-1] for line in room.splitlines()[2:-2])  # peak/max_members
