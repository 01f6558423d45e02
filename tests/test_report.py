"""Reporting: the views of migration 0003, `report_rows` and `roomsync report`, on both backends.

Every expected number is computed here, in plain Python, from the payloads that were stored.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import Invoke
from sqlalchemy.engine import Engine

from etl.cli import main
from etl.config import GROUPINGS
from etl.fake_api import generate_sessions
from etl.records import parse_session
from etl.report import check_range, display_width, parse_bound, render_table
from etl.storage.engines import make_engine
from etl.storage.migrate import downgrade, upgrade
from etl.storage.reporting import JSON_KEYS, report_rows
from etl.storage.sessions import write_batch

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
VIEWS = {
    "room_sessions_daily",
    "room_sessions_by_room",
    "room_sessions_by_status",
    *("session_costs", "daily_usage", "concurrency_peaks", "room_peaks"),  # 0007
}
EDGE_ROOM = "7d1c2b3a-0000-4000-8000-000000000001"
_BASE = generate_sessions(1, seed=99)[0]

Payload = dict[str, Any]


# --------------------------------------------------------------------------- data


def session(**fields: Any) -> Payload:
    """A completed session in list shape with a fresh id; `fields` override anything."""
    return {**_BASE, "id": str(uuid.uuid4()), **fields}


def edge_sessions() -> list[Payload]:
    """Hand-built cases: null durations, null start, unknown status, UTC day boundaries."""
    return [
        # completed, API duration missing: 59.2 s between the times -> 59 computed seconds
        session(
            start_time="2026-10-10T10:00:00.900Z",
            end_time="2026-10-10T10:01:00.100Z",
            duration=None,
            cost_in_dollars=None,
            status="completed",
        ),
        # completed, duration and end missing: nothing to compute
        session(
            start_time="2026-10-10T11:00:00Z", end_time=None, duration=None, status="completed"
        ),
        # never started: counted on its created_at day
        session(
            created_at="2026-10-11T05:00:00Z",
            start_time=None,
            end_time=None,
            duration=None,
            status=None,
            cost_in_dollars=None,
        ),
        # an unknown status, the last microsecond of a UTC day
        session(
            start_time="2026-10-11T23:59:59.999999Z",
            end_time="2026-10-12T00:00:29.999999Z",
            duration=30,
            status="waiting",
            cost_in_dollars=0.0025,
        ),
        # the first instant of the next day
        session(
            start_time="2026-10-12T00:00:00Z",
            end_time="2026-10-12T00:02:00Z",
            duration=120,
            status="completed",
            cost_in_dollars=0.01,
        ),
        # +02:00 in the payload: 23:30 UTC the day before
        session(
            start_time="2026-10-12T01:30:00+02:00",
            end_time=None,
            duration=None,
            status="in-progress",
            cost_in_dollars=None,
        ),
        # a room whose newest session has no display_name: the older display_name is kept
        session(
            room_id=EDGE_ROOM,
            name="edge-room",
            display_name="Edge Room",
            start_time="2026-10-01T08:00:00Z",
        ),
        session(
            room_id=EDGE_ROOM,
            name="edge-room-renamed",
            display_name=None,
            start_time="2026-10-02T08:00:00Z",
        ),
    ]


def store(engine: Engine, payloads: list[Payload]) -> None:
    """Store the payloads as a sync stores list items (a completed one's cost is final)."""
    rows = [parse_session(p, p["id"]) for p in payloads]
    write_batch(engine, rows, NOW, listed={p["id"] for p in payloads})


def final(p: Payload) -> bool:
    """Whether the stored cost counts: a completed session's, from the list."""
    return p["status"] == "completed" and p["cost_in_dollars"] is not None


@pytest.fixture
def payloads() -> list[Payload]:
    return generate_sessions(60, seed=5) + edge_sessions()


@pytest.fixture
def loaded(engine: Engine, payloads: list[Payload]) -> Engine:
    store(engine, payloads)
    return engine


# --------------------------------------------------------------------------- expectations


def ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def moment(p: Payload) -> datetime:
    """When the session happened: its start, else its creation."""
    at = ts(p["start_time"]) or ts(p["created_at"])
    assert at is not None
    return at


def computed_seconds(p: Payload) -> int | None:
    start, end = ts(p["start_time"]), ts(p["end_time"])
    if p["status"] != "completed" or p["duration"] is not None or start is None or end is None:
        return None
    return (end - start) // timedelta(seconds=1) if end >= start else None


def half_up(total: int, count: int) -> float:
    return float((Decimal(total) / count).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def room_name(payloads: list[Payload], room_id: str) -> str:
    """Newest display_name of the room, else newest name; newest by time, then by id."""
    sessions = [p for p in payloads if p["room_id"] == room_id]
    newest = max(sessions, key=lambda p: (p["display_name"] is not None, moment(p), p["id"]))
    return newest["display_name"] or newest["name"]


def bucket(p: Payload, by: str, payloads: list[Payload]) -> str:
    at = moment(p)
    if by == "day":
        return at.date().isoformat()
    if by == "week":
        return (at.date() - timedelta(days=at.weekday())).isoformat()
    if by == "month":
        return at.strftime("%Y-%m")
    if by == "status":
        return p["status"] if p["status"] is not None else "(none)"
    if by == "session":
        name = p["display_name"] or p["name"]
        return f"{name} ({p['id']})" if name else p["id"]
    if p["room_id"] is None:
        return "(no room)"
    return f"{room_name(payloads, p['room_id'])} ({p['room_id']})"


def measures(group: list[Payload]) -> dict[str, Any]:
    durations = [p["duration"] for p in group if p["duration"] is not None]
    costs = [p["cost_in_dollars"] for p in group if final(p)]
    computed = [s for s in map(computed_seconds, group) if s is not None]
    return {
        "sessions": len(group),
        "completed": sum(p["status"] == "completed" for p in group),
        "in_progress": sum(p["status"] == "in-progress" for p in group),
        "other_status": sum(p["status"] not in ("completed", "in-progress") for p in group),
        "duration_s": sum(durations) if durations else None,
        "avg_duration_s": half_up(sum(durations), len(durations)) if durations else None,
        "computed_duration_s": sum(computed) if computed else None,
        "cost_usd": round(sum(costs), 6) if costs else None,
        "sessions_with_cost": len(costs),
        "cost_pending": sum(p["status"] == "completed" and not final(p) for p in group),
        "deleted": 0,
    }


def grouped(
    payloads: list[Payload], key: Callable[[Payload], Any], keep: Callable[[Payload], bool]
) -> dict[Any, list[Payload]]:
    groups: dict[Any, list[Payload]] = defaultdict(list)
    for p in payloads:
        if keep(p):
            groups[key(p)].append(p)
    return groups


def expected_report(
    payloads: list[Payload],
    by: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    def keep(p: Payload) -> bool:
        return (since is None or moment(p) >= since) and (until is None or moment(p) < until)

    groups = grouped(payloads, lambda p: bucket(p, by, payloads), keep)
    rows = [
        {key: value for key, value in {"group": g, **measures(ps)}.items() if key in JSON_KEYS}
        for g, ps in groups.items()
    ]
    if by in ("day", "week", "month"):
        return sorted(rows, key=lambda r: r["group"])
    if by == "session":  # in time order
        at = {bucket(p, by, payloads): moment(p) for p in payloads}
        return sorted(rows, key=lambda r: (at[r["group"]], r["group"]))
    return sorted(rows, key=lambda r: (-r["sessions"], r["group"]))


def assert_rows_equal(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Equal, with float sums compared to a millionth (backends may add in another order)."""
    assert [r["group"] for r in actual] == [r["group"] for r in expected]
    for got, want in zip(actual, expected, strict=True):
        for key, value in want.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, abs=1e-6), (want["group"], key)
            else:
                assert got[key] == value, (want["group"], key)


def view_rows(engine: Engine, view: str, key: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {view}"))]
    for row in rows:
        if row[key] is not None:
            row[key] = str(row[key])  # date on PostgreSQL, text on SQLite; uuid likewise
    return sorted(rows, key=lambda r: (r[key] is None, r[key] or ""))


# --------------------------------------------------------------------------- views


def test_daily_view_matches_payloads(loaded: Engine, payloads: list[Payload]) -> None:
    groups = grouped(payloads, lambda p: moment(p).date().isoformat(), lambda p: True)
    expected = [{"day": day, **measures(ps)} for day, ps in sorted(groups.items())]
    actual = view_rows(loaded, "room_sessions_daily", "day")
    assert_rows_equal(
        [{**r, "group": r["day"]} for r in actual], [{**r, "group": r["day"]} for r in expected]
    )
    assert set(actual[0]) == set(expected[0])


def test_room_view_matches_payloads(loaded: Engine, payloads: list[Payload]) -> None:
    groups = grouped(payloads, lambda p: p["room_id"], lambda p: True)
    expected = sorted(
        (
            {
                "room_id": room,
                "room_name": None if room is None else room_name(payloads, room),
                **measures(ps),
            }
            for room, ps in groups.items()
        ),
        key=lambda r: (r["room_id"] is None, r["room_id"] or ""),
    )
    actual = view_rows(loaded, "room_sessions_by_room", "room_id")
    assert_rows_equal(
        [{**r, "group": r["room_id"]} for r in actual],
        [{**r, "group": r["room_id"]} for r in expected],
    )
    edge = next(r for r in actual if r["room_id"] == EDGE_ROOM)
    assert edge["room_name"] == "Edge Room" and edge["sessions"] == 2


def test_status_view_matches_payloads(loaded: Engine, payloads: list[Payload]) -> None:
    groups = grouped(payloads, lambda p: p["status"], lambda p: True)
    drop = ("completed", "in_progress", "other_status", "deleted")
    expected = sorted(
        (
            {"status": s, **{k: v for k, v in measures(ps).items() if k not in drop}}
            for s, ps in groups.items()
        ),
        key=lambda r: (r["status"] is None, r["status"] or ""),
    )
    actual = view_rows(loaded, "room_sessions_by_status", "status")
    assert_rows_equal(
        [{**r, "group": r["status"]} for r in actual],
        [{**r, "group": r["status"]} for r in expected],
    )
    assert {r["status"] for r in actual} >= {"completed", "in-progress", "waiting", None}


def test_computed_duration_is_kept_apart(engine: Engine) -> None:
    """Only completed sessions with a null duration and both times count, in whole seconds."""
    day = "2026-10-10T{}Z"
    store(
        engine,
        [
            session(
                start_time=day.format("10:00:00.900"),
                end_time=day.format("10:01:00.100"),
                duration=None,
                status="completed",
            ),
            session(
                start_time=day.format("11:00:00"),
                end_time=day.format("12:00:00"),
                duration=3600,
                status="completed",
            ),
            session(
                start_time=day.format("13:00:00"), end_time=None, duration=None, status="completed"
            ),
            session(
                start_time=day.format("14:00:00"),
                end_time=day.format("14:10:00"),
                duration=None,
                status="in-progress",
            ),
            session(
                start_time=day.format("15:00:00"),
                end_time=day.format("14:00:00"),
                duration=None,
                status="completed",
            ),
        ],
    )
    [row] = view_rows(engine, "room_sessions_daily", "day")
    assert row["day"] == "2026-10-10"
    assert row["duration_s"] == 3600
    assert row["computed_duration_s"] == 59
    assert row["avg_duration_s"] == 3600.0
    [json_row] = [r.to_dict() for r in report_rows(engine, "day")]
    assert json_row["duration_s"] == 3600  # the report adds no computed seconds


def test_null_costs_stay_unknown(engine: Engine) -> None:
    store(
        engine,
        [
            session(
                start_time="2026-10-01T10:00:00Z",
                cost_in_dollars=None,
                status="in-progress",
                end_time=None,
                duration=None,
            ),
            session(start_time="2026-10-02T10:00:00Z", cost_in_dollars=None),
            session(start_time="2026-10-02T11:00:00Z", cost_in_dollars=1.25),
        ],
    )
    days = view_rows(engine, "room_sessions_daily", "day")
    assert [(d["day"], d["cost_usd"], d["sessions_with_cost"]) for d in days] == [
        ("2026-10-01", None, 0),
        ("2026-10-02", 1.25, 1),
    ]
    report = [r.to_dict() for r in report_rows(engine, "day")]
    assert [(r["cost_usd"], r["duration_s"], r["avg_duration_s"]) for r in report] == [
        (None, None, None),
        (1.25, 2 * _BASE["duration"], float(_BASE["duration"])),
    ]


def test_days_are_utc_whatever_the_connection_time_zone(
    migrated_url: str, backend: str, payloads: list[Payload]
) -> None:
    """A PostgreSQL session in UTC+14 still buckets by UTC day, in the views and the report."""
    engine = make_engine(migrated_url)
    if backend == "postgresql":

        @sa.event.listens_for(engine, "connect")
        def far_east(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'Pacific/Kiritimati'")
            dbapi_connection.commit()

    try:
        store(engine, payloads)
        days = [r["day"] for r in view_rows(engine, "room_sessions_daily", "day")]
        report = [r.group for r in report_rows(engine, "day")]
    finally:
        engine.dispose()
    expected = sorted({moment(p).date().isoformat() for p in payloads})
    assert days == expected and report == expected
    assert "2026-10-11" in expected and "2026-10-12" in expected


def test_downgrade_drops_the_views(migrated_url: str) -> None:
    def names() -> set[str]:
        engine = make_engine(migrated_url)
        try:
            return set(sa.inspect(engine).get_view_names())
        finally:
            engine.dispose()

    assert names() == VIEWS
    downgrade(migrated_url, "0002")
    assert names() == set()
    upgrade(migrated_url)
    assert names() == VIEWS


# --------------------------------------------------------------------------- report_rows


RANGES: list[tuple[datetime | None, datetime | None]] = [
    (None, None),
    (datetime(2026, 10, 12, tzinfo=UTC), None),
    (None, datetime(2026, 10, 12, tzinfo=UTC)),
    (datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 19, 12, tzinfo=UTC)),
]


def test_report_matches_payloads(loaded: Engine, payloads: list[Payload]) -> None:
    for by in GROUPINGS:
        for since, until in RANGES:
            actual = [r.to_dict() for r in report_rows(loaded, by, since, until)]
            assert_rows_equal(actual, expected_report(payloads, by, since, until))
            assert all(list(r) == list(JSON_KEYS) for r in actual)


def test_report_labels(loaded: Engine) -> None:
    weeks = [r.group for r in report_rows(loaded, "week")]
    assert all(date.fromisoformat(w).weekday() == 0 for w in weeks)
    assert "2026-10-05" in weeks  # Monday of the week of 2026-10-10 and 2026-10-11
    assert all(len(r.group) == 7 for r in report_rows(loaded, "month"))
    rooms = [r.group for r in report_rows(loaded, "room")]
    assert f"Edge Room ({EDGE_ROOM})" in rooms and "(no room)" in rooms
    statuses = [r.group for r in report_rows(loaded, "status")]
    assert statuses[0] == "completed" and {"(none)", "waiting", "in-progress"} <= set(statuses)


def test_since_is_inclusive_and_until_exclusive(engine: Engine) -> None:
    edge = datetime(2026, 10, 12, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    store(
        engine,
        [
            session(start_time="2026-10-11T23:59:59.999999Z"),
            session(start_time="2026-10-12T00:00:00Z"),
            session(
                start_time=None,
                created_at="2026-10-12T00:00:00.000001Z",
                status=None,
                end_time=None,
                duration=None,
            ),
        ],
    )

    def count(since: datetime | None, until: datetime | None) -> int:
        return sum(r.sessions for r in report_rows(engine, "day", since, until))

    assert count(edge, None) == 2
    assert count(None, edge) == 1
    assert count(edge - tick, edge + tick) == 2
    assert count(edge, edge + tick) == 1
    assert count(edge + tick, None) == 1  # the never-started one, by created_at


def test_empty_range(loaded: Engine) -> None:
    assert report_rows(loaded, "day", datetime(2030, 1, 1, tzinfo=UTC)) == []


# --------------------------------------------------------------------------- parsing, table


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25", datetime(2026, 11, 25, tzinfo=UTC)),
        ("2026-11-25T10:30", datetime(2026, 11, 25, 10, 30, tzinfo=UTC)),
        ("2026-11-25T10:30:00Z", datetime(2026, 11, 25, 10, 30, tzinfo=UTC)),
        ("2026-11-25 12:30:00+02:00", datetime(2026, 11, 25, 10, 30, tzinfo=UTC)),
        # every RFC 3339 form, as API timestamps are read (they were "not a date")
        ("2026-11-25t10:30:00z", datetime(2026, 11, 25, 10, 30, tzinfo=UTC)),
        ("2026-11-25T10:30:00.123456789012Z", datetime(2026, 11, 25, 10, 30, 0, 123456, UTC)),
        ("2016-12-31T23:59:60Z", datetime(2017, 1, 1, tzinfo=UTC)),
        ("2026-11-26T00:30:00+14:00", datetime(2026, 11, 25, 10, 30, tzinfo=UTC)),
    ],
)
def test_parse_bound(text: str, expected: datetime) -> None:
    assert parse_bound(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2026-13-01",
        "2026-02-30",
        "",
        "25/11/2026",
        "2026-11-25T24:00:00Z",
        "2026-11-25T12:00:60Z",
    ],
)
def test_parse_bound_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a date"):
        parse_bound(text)


def test_check_range() -> None:
    day = datetime(2026, 11, 25, tzinfo=UTC)
    check_range(day, day + timedelta(seconds=1))
    check_range(None, day)
    with pytest.raises(ValueError, match="must be before"):
        check_range(day, day)


def test_table_aligns_wide_characters(loaded: Engine) -> None:
    store(loaded, [session(room_id=str(uuid.uuid4()), display_name="会議室 🚀 Réunion")])
    lines = render_table(report_rows(loaded, "room"), "room").splitlines()
    assert len({display_width(line) for line in lines}) == 1, lines
    assert lines[0].split()[:2] == ["room", "sessions"]
    assert lines[-1].startswith("total")
    assert display_width("会議室 🚀") == 9


# --------------------------------------------------------------------------- the command


def test_cli_every_format(
    migrated_url: str, loaded: Engine, payloads: list[Payload], tmp_path: Path, invoke: Invoke
) -> None:
    since, until = "2026-10-05", "2026-10-19T12:00:00Z"
    bounds = (parse_bound(since), parse_bound(until))
    args = ["--since", since, "--until", until]
    for by in GROUPINGS:
        expected = expected_report(payloads, by, *bounds)
        result = invoke(
            ["report", *args, "--by", by, "--format", "json"], {"DATABASE_URL": migrated_url}
        )
        assert result.exit_code == 0, result.output
        assert_rows_equal(json.loads(result.stdout), expected)

        result = invoke(
            ["report", *args, "--by", by, "--format", "csv"], {"DATABASE_URL": migrated_url}
        )
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[0] == ",".join(JSON_KEYS)
        assert_rows_equal(list(_typed_csv(result.stdout)), expected)

        result = invoke(["report", *args, "--by", by], {"DATABASE_URL": migrated_url})
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[0].startswith(by) and lines[-1].startswith("total")
        assert len(lines) == len(expected) + 4
        assert lines[-1].split()[1] == str(sum(r["sessions"] for r in expected))

    page = tmp_path / "report.html"
    result = invoke(
        ["report", *args, "--format", "html", "-o", str(page)], {"DATABASE_URL": migrated_url}
    )
    assert result.exit_code == 0, result.output
    assert page.read_text(encoding="utf-8").count('class="bar"') == len(
        expected_report(payloads, "day", *bounds)
    )


def _typed_csv(text: str) -> Iterable[dict[str, Any]]:
    types: dict[str, Callable[[str], Any]] = {
        "group": str,
        "sessions": int,
        "completed": int,
        "in_progress": int,
        "duration_s": int,
        "avg_duration_s": float,
        "cost_usd": float,
        "sessions_with_cost": int,
        "cost_pending": int,
        "deleted": int,
        "participant_minutes": float,
        "member_cost_usd": float,
        "recording_cost_usd": float,
        "charge_usd": float,
        "peak_sessions": int,
        "peak_members": int,
        "max_members": int,
    }
    for row in csv.DictReader(io.StringIO(text)):
        yield {k: None if v == "" else types[k](v) for k, v in row.items()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last week"], "Invalid value for '--since': 'last week' is not a date"),
        (["--until", "2026-11-31"], "Invalid value for '--until': '2026-11-31' is not a date"),
        (["--since", "2026-11-25", "--until", "2026-11-25"], "must be before --until"),
        (["--since", "2026-11-26", "--until", "2026-11-25T23:00"], "must be before --until"),
        (["--by", "year"], "Invalid value for '--by'"),
        (["--format", "xml"], "Invalid value for '--format'"),
        (["--format", "html"], "give -o/--output FILE"),
    ],
)
def test_cli_usage_errors(args: list[str], message: str, tmp_path: Path, invoke: Invoke) -> None:
    result = invoke(
        ["report", *args], {"DATABASE_URL": f"sqlite:///{tmp_path / 'never-created.db'}"}
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "never-created.db").exists()


def test_cli_needs_a_migrated_database(tmp_path: Path, invoke: Invoke) -> None:
    result = invoke(["report"], {"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"})
    assert result.exit_code == 3
    assert "roomsync db upgrade" in result.output and "Traceback" not in result.output


def test_cli_unwritable_output(migrated_url: str, tmp_path: Path, invoke: Invoke) -> None:
    target = tmp_path / "missing-dir" / "report.csv"
    result = invoke(
        ["report", "--format", "csv", "-o", str(target)], {"DATABASE_URL": migrated_url}
    )
    assert result.exit_code == 2
    assert f"cannot write {target}" in result.output and "Traceback" not in result.output


def test_cli_writes_output_file(
    migrated_url: str, loaded: Engine, tmp_path: Path, invoke: Invoke
) -> None:
    target = tmp_path / "report.json"
    result = invoke(
        ["report", "--format", "json", "--by", "month", "-o", str(target)],
        {"DATABASE_URL": migrated_url},
    )
    assert result.exit_code == 0 and result.stdout == ""
    assert sum(r["sessions"] for r in json.loads(target.read_text())) == 68


def test_report_has_help_and_is_documented() -> None:
    result = CliRunner().invoke(main, ["report", "--help"])
    assert result.exit_code == 0
    for option in ("--since", "--until", "--by", "--format", "--output", "--database-url"):
        assert option in result.stdout
    docs = Path(__file__).resolve().parent.parent / "docs"
    reporting = (docs / "reporting.md").read_text(encoding="utf-8")
    for name in (*VIEWS, "computed_duration_s", "roomsync report", "--format html -o"):
        assert name in reporting
