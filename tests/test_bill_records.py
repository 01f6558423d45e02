"""Parsing members, recordings, rooms and video log entries (no HTTP, no database)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from etl.bill_records import (
    CHARGE_COLUMNS,
    MEMBER_COLUMNS,
    RECORDING_COLUMNS,
    ROOM_COLUMNS,
    parse_member,
    parse_recording,
    parse_room,
    parse_video_log,
)
from etl.errors import PayloadError
from etl.storage.schema import room_recordings, room_session_members, rooms, video_charges

SESSION = "a1b2c3d4-5e6f-7890-abcd-ef1234567890"
ITEM = "c22d24f6-5a47-4597-9a23-c7d01e696b92"
URI = "https://files.signalwire.com/temporary/link/to/the/recording/file?Signature=s3cr3t"
SYNC_COLUMNS = {"first_synced_at", "last_synced_at", "deleted_at"}  # deleted_at: rooms gone (0008)


def member() -> dict[str, Any]:
    """The spec's member example."""
    return {
        "id": ITEM,
        "room_session_id": SESSION,
        "name": "John Smith",
        "join_time": "2022-01-01T10:00:00Z",
        "leave_time": "2022-01-01T11:00:00Z",
        "duration": 3600,
        "cost_in_dollars": 0.05,
    }


def recording() -> dict[str, Any]:
    """The spec's recording example."""
    return {
        "id": ITEM,
        "room_session_id": SESSION,
        "status": "completed",
        "started_at": "2022-01-01T10:00:00Z",
        "finished_at": "2022-01-01T11:00:00Z",
        "duration": 120,
        "size_in_bytes": 20971520,
        "format": "video/mp4",
        "cost_in_dollars": 0.05,
        "uri": URI,
        "created_at": "2022-01-01T10:00:00Z",
        "updated_at": "2022-01-01T11:00:00Z",
    }


def room() -> dict[str, Any]:
    """The spec's room example."""
    return {
        "id": ITEM,
        "name": "my_room",
        "display_name": "My Room's Name",
        "description": "This room will be used for full company all hands meetings",
        "max_members": 20,
        "quality": "720p",
        "fps": 20,
        "join_from": "2022-01-01T00:00:00Z",
        "join_until": "2022-12-31T23:59:59Z",
        "remove_at": "2022-12-31T23:59:59Z",
        "remove_after_seconds_elapsed": 120,
        "layout": "grid-responsive",
        "record_on_start": False,
        "tone_on_entry_and_exit": True,
        "room_join_video_off": False,
        "user_join_video_off": False,
        "enable_room_previews": False,
        "sync_audio_video": True,
        "meta": {"cost_centre": "CC-42", "team": {"name": "Sales"}},
        "prioritize_handraise": False,
        "created_at": "2022-01-01T10:00:00Z",
        "updated_at": "2022-01-01T11:00:00Z",
    }


def log_entry() -> dict[str, Any]:
    """The spec's log example, with an itemised charge."""
    return {
        "id": ITEM,
        "source": "realtime_api",
        "type": "video_room_session",
        "url": f"https://example.signalwire.com/api/video/room_sessions/{SESSION}",
        "room_name": "my_room",
        "status": "completed",
        "locked": False,
        "started_at": "2022-01-01T10:00:00Z",
        "ended_at": "2022-01-01T11:00:00Z",
        "charge": 0.01,
        "created_at": "2022-01-01T10:00:00Z",
        "charge_details": [
            {"description": "Video room session charge", "charge": 0.005},
            {"description": "Video room recording charge", "charge": 0.005},
        ],
    }


def columns_of(table: Any) -> set[str]:
    return {c.name for c in table.columns} - SYNC_COLUMNS


# --------------------------------------------------------------------------- well-formed bodies


def test_rows_have_exactly_the_table_columns() -> None:
    assert set(parse_member(member(), SESSION)) == columns_of(room_session_members)
    assert set(parse_recording(recording(), SESSION)) == columns_of(room_recordings)
    assert set(parse_room(room())) == columns_of(rooms)
    assert set(parse_video_log(log_entry())) == columns_of(video_charges)
    for names, table in (
        (MEMBER_COLUMNS, room_session_members),
        (RECORDING_COLUMNS, room_recordings),
        (ROOM_COLUMNS, rooms),
        (CHARGE_COLUMNS, video_charges),
    ):
        assert {*names, "raw"} == columns_of(table)


def test_member_parses_to_typed_columns() -> None:
    row = parse_member(member(), SESSION.upper())
    assert row["room_session_id"] == SESSION
    assert row["join_time"] == datetime(2022, 1, 1, 10, tzinfo=UTC)
    assert row["leave_time"] == datetime(2022, 1, 1, 11, tzinfo=UTC)
    assert (row["duration"], row["cost_in_dollars"], row["name"]) == (3600, 0.05, "John Smith")
    assert row["raw"] == member()


def test_member_still_in_the_room_has_no_leave_time() -> None:
    body = member() | {"leave_time": None, "duration": None, "name": None}
    row = parse_member(body)
    assert (row["leave_time"], row["duration"], row["name"]) == (None, None, None)


def test_recording_uri_is_dropped_and_kept_nowhere() -> None:
    body = recording()
    row = parse_recording(body, SESSION)
    assert "uri" not in row and "uri" not in row["raw"]
    assert URI not in json.dumps(row, default=str)
    assert row["raw"] == {k: v for k, v in recording().items() if k != "uri"}
    assert body["uri"] == URI  # the caller's body is not modified


def test_recording_size_beyond_32_bits_is_kept_exactly() -> None:
    for size in (2**31, 5 * 2**30 + 7, 2**63 - 1):
        row = parse_recording(recording() | {"size_in_bytes": size})
        assert row["size_in_bytes"] == size


def test_recording_in_progress_has_nulls() -> None:
    body = recording() | {
        "status": "recording",
        "finished_at": None,
        "duration": None,
        "size_in_bytes": None,
        "uri": None,
        "format": None,
    }
    row = parse_recording(body)
    assert row["status"] == "recording" and row["size_in_bytes"] is None
    assert "uri" not in row["raw"]


def test_room_keeps_meta_and_accepts_the_old_sync_name() -> None:
    body = room()
    del body["sync_audio_video"]
    body["audio_video_sync"] = False
    body["active_session"] = {"id": SESSION, "status": "in-progress"}
    row = parse_room(body)
    assert row["meta"] == {"cost_centre": "CC-42", "team": {"name": "Sales"}}
    assert row["sync_audio_video"] is False and row["fps"] == 20
    assert row["raw"]["active_session"]["id"] == SESSION
    assert parse_room(room() | {"meta": None, "quality": "4k", "layout": "9x9"})["meta"] is None


def test_log_entry_parses_session_from_url_and_charges() -> None:
    row = parse_video_log(log_entry())
    assert row["room_session_id"] == SESSION
    assert row["charge"] == 0.01
    assert row["charge_details"] == [
        {"description": "Video room session charge", "charge": 0.005},
        {"description": "Video room recording charge", "charge": 0.005},
    ]
    assert row["discarded_at"] is None and row["raw"] == log_entry()


@pytest.mark.parametrize(
    "url",
    [
        f"/api/video/room_sessions/{SESSION}",
        f"https://space.signalwire.com/api/video/room_sessions/{SESSION.upper()}/",
        f"https://space.signalwire.com/api/video/room_sessions/{SESSION}?x=1#frag",
    ],
)
def test_session_url_forms(url: str) -> None:
    assert parse_video_log(log_entry() | {"url": url})["room_session_id"] == SESSION


def test_url_of_something_else_keeps_the_charge_unattributed() -> None:
    row = parse_video_log(
        log_entry() | {"url": f"https://x.signalwire.com/api/video/conferences/{SESSION}"}
    )
    assert row["room_session_id"] is None and row["charge"] == 0.01


def test_charge_details_as_numeric_text() -> None:
    details = [
        {"description": "a", "charge": "0.005"},
        {"description": "b", "charge": " 1e-3 "},
        {"description": "c", "charge": 2},
    ]
    row = parse_video_log(log_entry() | {"charge_details": details})
    assert [d["charge"] for d in row["charge_details"] or []] == [0.005, 0.001, 2.0]
    assert row["raw"]["charge_details"] == details  # raw as it came


def test_deleted_log_entry() -> None:
    body = {
        "id": ITEM,
        "discarded_at": "2022-02-01T00:00:00Z",
        "created_at": "2022-01-01T10:00:00Z",
    }
    row = parse_video_log(body)
    assert row["discarded_at"] == datetime(2022, 2, 1, tzinfo=UTC)
    assert row["created_at"] == datetime(2022, 1, 1, 10, tzinfo=UTC)
    others = {"id", "created_at", "discarded_at", "raw"}
    assert {k: v for k, v in row.items() if k not in others} == dict.fromkeys(
        set(CHARGE_COLUMNS) - others
    )
    assert row["raw"] == body


def test_unknown_fields_are_kept_in_raw() -> None:
    row = parse_member(member() | {"brand_new": [1, {"x": None}]})
    assert row["raw"]["brand_new"] == [1, {"x": None}]


# --------------------------------------------------------------------------- hostile bodies


HOSTILE: list[tuple[str, Any, Any, str]] = [
    # (kind, body, session it was listed under, words the reason must contain)
    (
        "member",
        member() | {"duration": -1},
        SESSION,
        "'duration' should be a number that is not negative",
    ),
    ("member", member() | {"leave_time": "2022-01-01T09:59:59Z"}, SESSION, "leave_time"),
    ("member", member() | {"name": "\ud800"}, SESSION, "lone UTF-16 surrogate"),
    ("member", member() | {"name": "a\x00b"}, SESSION, "NUL"),
    ("member", member() | {"duration": "3600"}, SESSION, "'duration' should be an integer"),
    ("member", member() | {"duration": 2**31}, SESSION, "32 bits"),
    (
        "member",
        member() | {"cost_in_dollars": "free"},
        SESSION,
        "'cost_in_dollars' should be a number",
    ),
    ("member", member() | {"cost_in_dollars": float("nan")}, SESSION, "'cost_in_dollars'"),
    ("member", member() | {"join_time": "yesterday"}, SESSION, "'join_time'"),
    ("member", member() | {"join_time": 1640995200}, SESSION, "'join_time'"),
    ("member", {k: v for k, v in member().items() if k != "id"}, SESSION, "id is missing"),
    ("member", member() | {"id": "not-a-uuid"}, SESSION, "not a UUID"),
    ("member", member() | {"room_session_id": None}, SESSION, "'room_session_id' is missing"),
    ("member", member(), "0b7c2d1e-95a3-4f4e-8a55-3a3f6d1c0e42", "listed under session"),
    ("member", [member()], SESSION, "not an object"),
    ("member", "member", SESSION, "not an object"),
    ("recording", recording() | {"size_in_bytes": 2**63}, SESSION, "64 bits"),
    ("recording", recording() | {"size_in_bytes": -5}, SESSION, "not negative"),
    (
        "recording",
        recording() | {"size_in_bytes": 1.5},
        SESSION,
        "'size_in_bytes' should be an integer",
    ),
    ("recording", recording() | {"duration": -120}, SESSION, "'duration'"),
    ("recording", recording() | {"finished_at": "2021-12-31T00:00:00Z"}, SESSION, "finished_at"),
    ("recording", recording() | {"status": 3}, SESSION, "'status' should be a string"),
    ("recording", recording() | {"created_at": None}, SESSION, "'created_at' is missing"),
    ("recording", recording() | {"format": "video/\udc80"}, SESSION, "lone UTF-16 surrogate"),
    ("recording", recording() | {"uri": 12345}, SESSION, "'uri' should be a string"),
    ("room", room() | {"name": None}, None, "'name' is missing"),
    ("room", room() | {"meta": ["not", "an", "object"]}, None, "'meta' should be a JSON object"),
    ("room", room() | {"meta": {"k": "\ud83d"}}, None, "lone UTF-16 surrogate"),
    ("room", room() | {"max_members": True}, None, "'max_members'"),
    ("room", room() | {"record_on_start": "no"}, None, "'record_on_start' should be a boolean"),
    ("room", room() | {"active_session": "live"}, None, "'active_session'"),
    ("log entry", log_entry() | {"charge": None}, None, "'charge' is missing"),
    ("log entry", log_entry() | {"charge": "lots"}, None, "'charge'"),
    ("log entry", log_entry() | {"url": None}, None, "'url' is missing"),
    (
        "log entry",
        log_entry() | {"url": "/api/video/room_sessions/42"},
        None,
        "names no valid session",
    ),
    (
        "log entry",
        log_entry() | {"charge_details": {"a": 1}},
        None,
        "'charge_details' should be a list",
    ),
    ("log entry", log_entry() | {"charge_details": [1]}, None, "charge_details[0]"),
    (
        "log entry",
        log_entry() | {"charge_details": [{"description": "x", "charge": "NaN"}]},
        None,
        "charge_details[0]",
    ),
    (
        "log entry",
        log_entry() | {"charge_details": [{"description": "x", "charge": "1e999"}]},
        None,
        "charge_details[0]",
    ),
    (
        "log entry",
        log_entry() | {"charge_details": [{"description": None, "charge": 1}]},
        None,
        "charge_details[0]",
    ),
    ("log entry", log_entry() | {"ended_at": "2021-01-01T00:00:00Z"}, None, "ended_at"),
    ("log entry", log_entry() | {"locked": "no"}, None, "'locked'"),
    (
        "log entry",
        {"id": ITEM, "discarded_at": "soon", "created_at": "2022-01-01T10:00:00Z"},
        None,
        "'discarded_at'",
    ),
    (
        "log entry",
        {"id": ITEM, "discarded_at": "2022-01-01T10:00:00Z"},
        None,
        "'created_at' is missing",
    ),
]

PARSERS = {
    "member": lambda body, sid: parse_member(body, sid),
    "recording": lambda body, sid: parse_recording(body, sid),
    "room": lambda body, _: parse_room(body),
    "log entry": lambda body, _: parse_video_log(body),
}


@pytest.mark.parametrize(("kind", "body", "session", "reason"), HOSTILE)
def test_hostile_bodies_fail_the_item_with_a_reason(
    kind: str, body: Any, session: str | None, reason: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        PARSERS[kind](body, session)
    message = str(caught.value)
    assert reason in message
    assert message.count("\n") == 0
    if isinstance(body, dict) and body.get("id") == ITEM:
        assert message.startswith(f"{kind} {ITEM}: ")  # the item is named
    assert URI not in message and "s3cr3t" not in message


def test_recording_errors_never_show_the_uri() -> None:
    """Whatever breaks, the signed link is not in the reason (it could reach the ledger)."""
    for broken in ({"size_in_bytes": "big"}, {"id": None}, {"status": ["x"]}, {"x": "\ud800"}):
        with pytest.raises(PayloadError) as caught:
            parse_recording(recording() | broken)
        assert "s3cr3t" not in str(caught.value)


def test_long_bad_values_are_shortened_in_the_reason() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_member(member() | {"name": ["x" * 10_000]})
    assert len(str(caught.value)) < 300
