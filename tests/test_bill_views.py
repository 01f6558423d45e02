"""The bill's views (migration 0007): session_costs, daily_usage, concurrency_peaks, room_peaks,
on both backends, each checked against the same figures computed here in plain Python from the
stand-in account that was stored; and no view overflows on money (issue 22, defect 8).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from bill_data import insert, store_account, store_sessions
from sqlalchemy.engine import Engine

from etl.bill_records import parse_video_log
from etl.fake_api import VideoAccount, generate_account, generate_sessions
from etl.storage.engines import make_engine
from etl.storage.migrate import downgrade, upgrade
from etl.storage.schema import (
    room_recordings,
    room_session_members,
    room_sessions,
    video_charges,
)

OLD_VIEWS = ("room_sessions_daily", "room_sessions_by_room", "room_sessions_by_status")
NEW_VIEWS = ("session_costs", "daily_usage", "concurrency_peaks", "room_peaks")
DELETED_INDEX = 3  # one stored session is marked deleted upstream: it stays in every view

Row = dict[str, Any]


@pytest.fixture(scope="module")
def account() -> VideoAccount:
    return generate_account(80, seed=18)


@pytest.fixture
def loaded(engine: Engine, account: VideoAccount) -> Engine:
    store_account(engine, account)
    deleted = account.sessions[DELETED_INDEX]["id"]
    with engine.begin() as conn:
        conn.execute(
            room_sessions.update()
            .where(room_sessions.c.id == deleted)
            .values(deleted_at=datetime(2026, 11, 2, tzinfo=UTC))
        )
    return engine


def rows_of(engine: Engine, view: str) -> list[Row]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {view}"))]


def moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def as_utc(value: Any) -> Any:
    """A view's timestamp: text on SQLite, timestamptz on PostgreSQL."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value


def same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and actual is not None:
        return bool(actual == pytest.approx(expected, abs=1e-6))
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is None if expected is None else bool(actual) == expected
    return bool(actual == expected)


def assert_rows(actual: Iterable[Row], expected: dict[Any, Row], key: Any) -> None:
    got = {key(r): r for r in actual}
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    for k, want in expected.items():
        for column, value in want.items():
            assert same(got[k][column], value), (k, column, got[k][column], value)


# --------------------------------------------------------------------------- expectations


def _sum(values: Iterable[float | int | None]) -> Any:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _final(p: Row) -> bool:
    return p["status"] == "completed" and p["cost_in_dollars"] is not None


def _charges(account: VideoAccount) -> dict[str, list[float]]:
    charges: dict[str, list[float]] = defaultdict(list)
    for entry in account.logs:
        if entry["id"] in account.discarded_logs:
            continue
        row = parse_video_log(entry)
        if row["room_session_id"] is not None and row["charge"] is not None:
            charges[row["room_session_id"]].append(row["charge"])
    return charges


def per_session(account: VideoAccount) -> dict[str, Row]:
    """The raw figures of every session, as session_costs and daily_usage see them."""
    charges = _charges(account)
    deleted = account.sessions[DELETED_INDEX]["id"]
    out = {}
    for p in account.sessions:
        members = account.members.get(p["id"], [])
        recordings = account.recordings.get(p["id"], [])
        at = moment(p["start_time"] or p["created_at"])
        assert at is not None
        out[p["id"]] = {
            "name": p["name"],
            "day": at.date(),
            "status": p["status"],
            "deleted": p["id"] == deleted,
            "final": _final(p),
            "duration": p["duration"],
            "members": len(members),
            "member_seconds": _sum(m["duration"] for m in members),
            "member_cost": _sum(m["cost_in_dollars"] for m in members),
            "recordings": len(recordings),
            "recording_seconds": _sum(r["duration"] for r in recordings),
            "recording_cost": _sum(r["cost_in_dollars"] for r in recordings),
            "charge": _sum(charges.get(p["id"], [])),
            "session_cost": p["cost_in_dollars"] if _final(p) else None,
        }
    return out


def _minutes(seconds: int | None) -> float | None:
    return None if seconds is None else seconds / 60


def _agrees(s: Row) -> bool | None:
    participation = None
    if s["charge"] is not None:
        participation = s["charge"] - (s["recording_cost"] or 0)
    known = [v for v in (s["session_cost"], s["member_cost"], participation) if v is not None]
    if len(known) < 2:
        return None
    return all(round(abs(a - b), 6) <= 0.01 for a in known for b in known)


def expected_session_costs(account: VideoAccount) -> dict[str, Row]:
    return {
        sid: {
            "room_name": s["name"],
            "day": s["day"],
            "minutes": _minutes(s["duration"]),
            "members": s["members"],
            "participant_minutes": _minutes(s["member_seconds"]),
            "session_cost": s["session_cost"],
            "member_cost": s["member_cost"],
            "recording_cost": s["recording_cost"],
            "charge": s["charge"],
            "cost_agrees": _agrees(s),
            "recordings": s["recordings"],
            "recording_minutes": _minutes(s["recording_seconds"]),
        }
        for sid, s in per_session(account).items()
    }


def _spend(s: Row) -> float | None:
    if s["charge"] is not None:
        return float(s["charge"])
    if s["session_cost"] is None and s["recording_cost"] is None:
        return None
    return float((s["session_cost"] or 0) + (s["recording_cost"] or 0))


def expected_daily_usage(account: VideoAccount) -> dict[tuple[date, str | None], Row]:
    groups: dict[tuple[date, str | None], list[Row]] = defaultdict(list)
    for s in per_session(account).values():
        groups[(s["day"], s["name"])].append(s)
    return {
        key: {
            "sessions": len(ss),
            "minutes": _minutes(_sum(s["duration"] for s in ss)),
            "participant_minutes": _minutes(_sum(s["member_seconds"] for s in ss)),
            "recording_minutes": _minutes(_sum(s["recording_seconds"] for s in ss)),
            "cost": _sum(_spend(s) for s in ss),
            "cost_pending": sum(
                s["status"] == "completed" and not s["deleted"] and not s["final"] for s in ss
            ),
        }
        for key, ss in groups.items()
    }


Span = tuple[datetime, datetime]


def spans(account: VideoAccount, now: datetime) -> tuple[list[Span], dict[str | None, list[Span]]]:
    """Session intervals, and member intervals per room name, by the views' documented rule."""
    deleted = account.sessions[DELETED_INDEX]["id"]
    sessions, members = [], defaultdict(list)
    for p in account.sessions:
        live = p["status"] == "in-progress" and p["id"] != deleted
        start, end = moment(p["start_time"]), moment(p["end_time"]) or (now if live else None)
        if start is not None and end is not None and end > start:
            sessions.append((start, end))
        for m in account.members.get(p["id"], []):
            join = moment(m["join_time"])
            leave = moment(m["leave_time"]) or moment(p["end_time"]) or (now if live else None)
            if join is not None and leave is not None and leave > join:
                members[p["name"]].append((join, leave))
    return sessions, members


def _peak(intervals: list[Span], candidates: Iterable[datetime]) -> tuple[int, datetime | None]:
    best, at = 0, None
    for instant in sorted(candidates):
        level = sum(start <= instant < end for start, end in intervals)
        if level > best:
            best, at = level, instant
    return best, at


def expected_concurrency(account: VideoAccount, now: datetime) -> dict[date, Row]:
    sessions, by_room = spans(account, now)
    members = [span for spans_ in by_room.values() for span in spans_]
    everything = sessions + members
    first = min(start for start, _ in everything).date()
    last = max(end for _, end in everything).date()
    out = {}
    for n in range((last - first).days + 1):
        day = first + timedelta(days=n)
        midnight = datetime.combine(day, time(), UTC)

        peak_s, at_s = _peak(sessions, [midnight, *(s for s, _ in sessions if s.date() == day)])
        peak_m, at_m = _peak(members, [midnight, *(s for s, _ in members if s.date() == day)])
        if peak_s or peak_m:
            out[day] = {
                "peak_sessions": peak_s,
                "peak_sessions_at": at_s,
                "peak_members": peak_m,
                "peak_members_at": at_m,
            }
    return out


def expected_room_peaks(account: VideoAccount, now: datetime) -> dict[str | None, Row]:
    _, by_room = spans(account, now)
    rooms_by_name: dict[str, Row] = {}
    for room in sorted(account.rooms, key=lambda r: r["updated_at"]):
        rooms_by_name[room["name"]] = room  # the newest wins
    out = {}
    for name, intervals in by_room.items():
        peak, at = _peak(intervals, [s for s, _ in intervals])
        newest = max(
            (p for p in account.sessions if p["name"] == name),
            key=lambda p: moment(p["created_at"]) or now,
        )
        room = rooms_by_name.get(name) if name is not None else None
        with_id = [p for p in account.sessions if p["name"] == name and p["room_id"]]
        newest_id = max(with_id, key=lambda p: moment(p["created_at"]) or now, default=None)
        out[name] = {
            "room_id": room["id"] if room else newest_id and newest_id["room_id"],
            "peak_members": peak,
            "peak_members_at": at,
            "max_members": room["max_members"] if room else newest["max_members"],
        }
    return out


# --------------------------------------------------------------------------- the views


def test_session_costs(loaded: Engine, account: VideoAccount) -> None:
    actual = rows_of(loaded, "session_costs")
    for row in actual:
        row["day"] = date.fromisoformat(str(row["day"]))
    assert_rows(actual, expected_session_costs(account), lambda r: str(r["room_session_id"]))
    agrees = [r["cost_agrees"] for r in actual]
    assert agrees.count(True) > 10, "the stand-in's sources agree for completed sessions"
    deleted = account.sessions[DELETED_INDEX]["id"]
    assert any(str(r["room_session_id"]) == deleted and r["deleted_at"] for r in actual)


def test_cost_agrees_compares_participation_within_a_cent(engine: Engine) -> None:
    """Session cost, members' sum and log charge less recordings: within a cent agree; two
    known sources are enough to disagree; one known source says nothing."""
    base = generate_sessions(1, seed=7)[0]
    day = datetime(2026, 10, 1, 10, tzinfo=UTC)
    cases = {  # session cost, member costs, recording costs, charge -> cost_agrees
        "exact": (1.00, [0.40, 0.60], [0.25], 1.25, True),
        "a cent off": (1.00, [0.40, 0.61], [], None, True),
        "over a cent": (1.00, [0.40, 0.611], [], None, False),
        "charge disagrees": (1.00, [1.00], [0.25], 1.00, False),
        "charge alone": (None, [], [], 2.00, None),
        "members and charge": (None, [0.5], [0.5], 1.0, True),
    }
    ids = {name: str(uuid.uuid4()) for name in cases}
    payloads, members, recordings, charges = [], [], [], []
    for name, (cost, member_costs, recording_costs, charge, _) in cases.items():
        sid = ids[name]
        status = "completed" if cost is not None else "in-progress"
        payloads.append({**base, "id": sid, "status": status, "cost_in_dollars": cost or 0.0})
        for c in member_costs:
            members.append(_member(sid, c, day))
        for c in recording_costs:
            recordings.append(_recording(sid, c, day))
        if charge is not None:
            charges.append(_charge(sid, charge, day))
    store_sessions(engine, payloads)
    insert(engine, room_session_members, members)
    insert(engine, room_recordings, recordings)
    insert(engine, video_charges, charges)
    got = {str(r["room_session_id"]): r["cost_agrees"] for r in rows_of(engine, "session_costs")}
    for name, case in cases.items():
        assert same(got[ids[name]], case[-1]), name


def _member(sid: str, cost: float, at: datetime, seconds: int = 60) -> Row:
    return {
        "id": str(uuid.uuid4()),
        "room_session_id": sid,
        "join_time": at,
        "leave_time": at + timedelta(seconds=seconds),
        "duration": seconds,
        "cost_in_dollars": cost,
        "raw": {},
    }


def _recording(sid: str, cost: float, at: datetime) -> Row:
    return {
        "id": str(uuid.uuid4()),
        "room_session_id": sid,
        "status": "completed",
        "duration": 60,
        "cost_in_dollars": cost,
        "created_at": at,
        "updated_at": at,
        "raw": {},
    }


def _charge(sid: str, charge: float, at: datetime, discarded: datetime | None = None) -> Row:
    return {
        "id": str(uuid.uuid4()),
        "room_session_id": sid,
        "charge": charge,
        "created_at": at,
        "discarded_at": discarded,
        "raw": {},
    }


def test_daily_usage(loaded: Engine, account: VideoAccount) -> None:
    actual = rows_of(loaded, "daily_usage")
    expected = expected_daily_usage(account)
    assert_rows(actual, expected, lambda r: (date.fromisoformat(str(r["day"])), r["room_name"]))
    assert sum(r["cost_pending"] for r in actual) == sum(
        r["cost_pending"] for r in expected.values()
    )


def _today() -> date:
    return datetime.now(UTC).date()


def test_concurrency_peaks(loaded: Engine, account: VideoAccount) -> None:
    for _ in range(3):  # an open interval counts until now: read both on the same UTC day
        before = _today()
        actual = rows_of(loaded, "concurrency_peaks")
        now = datetime.now(UTC)
        if now.date() == before:
            break
    for row in actual:
        row["day"] = date.fromisoformat(str(row["day"]))
        row["peak_sessions_at"] = as_utc(row["peak_sessions_at"])
        row["peak_members_at"] = as_utc(row["peak_members_at"])
    expected = expected_concurrency(account, now)
    assert_rows(actual, expected, lambda r: r["day"])
    assert max(r["peak_sessions"] for r in actual) >= 2
    assert any(
        r["peak_members_at"] == datetime.combine(d, time(), UTC) for d, r in expected.items()
    )


def test_room_peaks(loaded: Engine, account: VideoAccount) -> None:
    actual = rows_of(loaded, "room_peaks")
    for row in actual:
        row["peak_members_at"] = as_utc(row["peak_members_at"])
    for row in actual:
        row["room_id"] = None if row["room_id"] is None else str(row["room_id"])
    expected = expected_room_peaks(account, datetime.now(UTC))
    assert_rows(actual, expected, lambda r: r["room_name"])
    assert sum(r["room_id"] is not None for r in actual) > len(actual) / 2
    assert any(r["room_id"] is None for r in actual)  # ad-hoc rooms: no room, no room_id


def test_peaks_follow_the_documented_intervals(engine: Engine) -> None:
    """Half-open intervals; a member without leave_time stays until its session's end; a
    session without end_time that is not live is left out; days entered with members present."""
    base = generate_sessions(1, seed=3)[0]
    t = datetime(2026, 10, 1, 22, tzinfo=UTC)
    iso = "{:%Y-%m-%dT%H:%M:%SZ}".format
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    store_sessions(
        engine,
        [
            {
                **base,
                "id": a,
                "name": "r",
                "start_time": iso(t),
                "end_time": iso(t + timedelta(hours=4)),
            },
            # starts when `a`... no: ends exactly when it starts (half-open: never both)
            {
                **base,
                "id": b,
                "name": "r",
                "start_time": iso(t + timedelta(hours=4)),
                "end_time": iso(t + timedelta(hours=5)),
            },
            # completed without end_time: its span is unknown
            {
                **base,
                "id": c,
                "name": "r",
                "start_time": iso(t),
                "end_time": None,
                "duration": None,
            },
        ],
    )
    members = [_member(a, 0.1, t, 3600), _member(a, 0.1, t + timedelta(minutes=30), 7200)]
    members.append(
        {**_member(a, 0.1, t + timedelta(minutes=45)), "leave_time": None, "duration": None}
    )
    insert(engine, room_session_members, members)
    rows = {date.fromisoformat(str(r["day"])): r for r in rows_of(engine, "concurrency_peaks")}
    first, second = rows[date(2026, 10, 1)], rows[date(2026, 10, 2)]
    assert first["peak_sessions"] == 1 and second["peak_sessions"] == 1
    assert first["peak_members"] == 3
    assert as_utc(first["peak_members_at"]) == t + timedelta(minutes=45)
    assert second["peak_members"] == 2  # two members still there at midnight (one until the end)
    assert as_utc(second["peak_members_at"]) == datetime(2026, 10, 2, tzinfo=UTC)
    [room] = rows_of(engine, "room_peaks")
    assert room["room_name"] == "r" and room["peak_members"] == 3
    assert max(rows) == date(2026, 10, 2)


def test_an_end_in_the_far_future_counts_until_now(engine: Engine) -> None:
    base = generate_sessions(1, seed=5)[0]
    start = datetime.now(UTC) - timedelta(days=2)
    far = {**base, "id": str(uuid.uuid4()), "start_time": f"{start:%Y-%m-%dT%H:%M:%SZ}"}
    store_sessions(engine, [{**far, "end_time": "9999-12-30T00:00:00Z", "duration": None}])
    days = sorted(date.fromisoformat(str(r["day"])) for r in rows_of(engine, "concurrency_peaks"))
    assert days[0] == start.date() and days[-1] <= datetime.now(UTC).date()
    assert len(days) <= 3


def test_a_start_in_the_year_1_does_not_explode_the_day_series(engine: Engine) -> None:
    """A session starting (and a member joining) in the year 1 used to make concurrency_peaks
    generate ~740,000 days (half a minute per query on SQLite); a start before 2000-01-01 UTC
    now counts from then (migration 0008), so the series stays under 10,000 days."""
    base = generate_sessions(1, seed=6)[0]
    sid = str(uuid.uuid4())
    end = datetime(2026, 10, 1, 12, tzinfo=UTC)
    ancient = {**base, "id": sid, "start_time": "0001-01-01T00:00:00Z"}
    store_sessions(engine, [{**ancient, "end_time": f"{end:%Y-%m-%dT%H:%M:%SZ}", "duration": None}])
    insert(engine, room_session_members, [_member(sid, 0.1, datetime(1, 1, 1, tzinfo=UTC), 60)])
    joined = _member(sid, 0.1, datetime(1, 1, 1, tzinfo=UTC))
    insert(engine, room_session_members, [{**joined, "leave_time": end, "duration": None}])
    rows = {date.fromisoformat(str(r["day"])): r for r in rows_of(engine, "concurrency_peaks")}
    floor = datetime(2000, 1, 1, tzinfo=UTC)
    assert min(rows) == floor.date() and max(rows) == end.date()
    assert len(rows) == (end.date() - floor.date()).days + 1  # one per day, none before 2000
    assert as_utc(rows[floor.date()]["peak_sessions_at"]) == floor
    assert rows[floor.date()]["peak_members"] == 1  # the 60-second member is left before 2000
    assert rows[end.date()]["peak_sessions"] == 1


def test_negative_durations_stored_by_an_older_version_are_left_out(engine: Engine) -> None:
    """A member with leave_time before join_time (duration -1800) or a recording with a negative
    duration, stored before the parser refused them, cancelled real participant-minutes in
    session_costs and daily_usage (migration 0008 leaves a negative duration out)."""
    base = generate_sessions(1, seed=7)[0]
    sid = str(uuid.uuid4())
    t = datetime(2026, 10, 3, 10, tzinfo=UTC)
    store_sessions(
        engine, [{**base, "id": sid, "name": "neg", "start_time": f"{t:%Y-%m-%dT%H:%M:%SZ}"}]
    )
    good = _member(sid, 0.5, t, 1800)
    inverted = {**_member(sid, 0.5, t + timedelta(hours=1)), "duration": -1800}
    inverted["leave_time"] = inverted["join_time"] - timedelta(minutes=30)
    insert(engine, room_session_members, [good, inverted])
    insert(engine, room_recordings, [{**_recording(sid, 0.1, t), "duration": -600}])
    [cost] = [r for r in rows_of(engine, "session_costs") if str(r["room_session_id"]) == sid]
    assert cost["members"] == 2 and cost["participant_minutes"] == 30.0
    assert cost["recording_minutes"] is None and cost["member_cost"] == 1.0
    [usage] = [r for r in rows_of(engine, "daily_usage") if r["room_name"] == "neg"]
    assert usage["participant_minutes"] == 30.0 and usage["recording_minutes"] is None
    [room] = [r for r in rows_of(engine, "room_peaks") if r["room_name"] == "neg"]
    assert room["peak_members"] == 1


# --------------------------------------------------------------------------- overflow


HUGE = 1e308  # two of them sum beyond a double (1.8e308)


def test_no_view_overflows_on_money(engine: Engine) -> None:
    """Issue 22, defect 8: a cost sum beyond a double is NULL in every view, on both backends
    (PostgreSQL used to fail the whole query, SQLite to return Infinity)."""
    base = generate_sessions(1, seed=11)[0]
    day = "2026-10-01T{}:00:00Z"
    huge = [
        {
            **base,
            "id": str(uuid.uuid4()),
            "name": "huge",
            "room_id": None,
            "start_time": day.format(h),
        }
        for h in ("10", "11")
    ]
    small = {
        **base,
        "id": str(uuid.uuid4()),
        "name": "small",
        "room_id": None,
        "start_time": "2026-10-02T10:00:00Z",
        "cost_in_dollars": 2.5,
    }
    for p in huge:
        p["cost_in_dollars"] = HUGE
    store_sessions(engine, [*huge, small])
    at = datetime(2026, 10, 1, 10, tzinfo=UTC)
    sid = huge[0]["id"]
    insert(engine, room_session_members, [_member(sid, HUGE, at), _member(sid, HUGE, at)])
    insert(engine, room_recordings, [_recording(sid, HUGE, at), _recording(sid, HUGE, at)])
    insert(engine, video_charges, [_charge(sid, HUGE, at), _charge(sid, HUGE, at)])

    daily = {str(r["day"]): r for r in rows_of(engine, "room_sessions_daily")}
    assert daily["2026-10-01"]["cost_usd"] is None
    assert daily["2026-10-02"]["cost_usd"] == 2.5
    by_room = rows_of(engine, "room_sessions_by_room")
    assert [r["cost_usd"] for r in by_room] == [None]  # the three share room_id null
    by_status = {r["status"]: r for r in rows_of(engine, "room_sessions_by_status")}
    assert by_status["completed"]["cost_usd"] is None
    costs = {str(r["room_session_id"]): r for r in rows_of(engine, "session_costs")}
    assert costs[sid]["session_cost"] == HUGE
    assert costs[sid]["member_cost"] is None and costs[sid]["recording_cost"] is None
    assert costs[sid]["charge"] is None
    assert costs[small["id"]]["session_cost"] == 2.5
    usage = {str(r["day"]): r for r in rows_of(engine, "daily_usage")}
    assert usage["2026-10-01"]["cost"] is None and usage["2026-10-02"]["cost"] == 2.5
    for view in (*OLD_VIEWS, *NEW_VIEWS):
        for row in rows_of(engine, view):
            for value in row.values():
                assert not (isinstance(value, float) and value != value), view  # NaN
                assert value not in (float("inf"), float("-inf")), view


# --------------------------------------------------------------------------- up and down


def _view_sql(url: str) -> dict[str, str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                query = "SELECT name, sql FROM sqlite_master WHERE type = 'view'"
            else:
                query = (
                    "SELECT viewname, definition FROM pg_views WHERE schemaname = current_schema()"
                )
            return {name: sql for name, sql in conn.exec_driver_sql(query)}
    finally:
        engine.dispose()


def test_downgrade_restores_the_0005_views_exactly(db_url: str) -> None:
    upgrade(db_url, "0006")
    before = _view_sql(db_url)
    assert set(before) == set(OLD_VIEWS)
    upgrade(db_url, "0007")
    after = _view_sql(db_url)
    assert set(after) == {*OLD_VIEWS, *NEW_VIEWS}
    assert all(after[v] != before[v] for v in OLD_VIEWS)  # the guarded sums
    downgrade(db_url, "0006")
    assert _view_sql(db_url) == before
    upgrade(db_url, "0007")
    assert _view_sql(db_url) == after
