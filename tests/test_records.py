"""Payload validation and id-list reading (no HTTP, no database)."""

from __future__ import annotations

import itertools
import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from etl.errors import PayloadError, TimestampRangeError
from etl.fake_api import by_id_view, generate_sessions
from etl.records import (
    COLUMN_FIELDS,
    FIELD_KINDS,
    _parse_rfc3339,
    _unstorable,
    canonical_uuid,
    check_boolean,
    parse_session,
    parse_timestamp,
    unstorable,
)

SID = "c22d24f6-5a47-4597-9a23-c7d01e696b92"


def reference_example() -> dict[str, Any]:
    """The vendor reference page's response example, verbatim."""
    return {
        "id": SID,
        "room_id": "a1b2c3d4-5e6f-7890-abcd-ef1234567890",
        "name": "my_example_room",
        "display_name": "My Room's Name",
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
        "locked": False,
        "start_time": "2022-01-01T10:00:00Z",
        "end_time": "2022-01-01T11:00:00Z",
        "duration": 120,
        "status": "completed",
        "created_at": "2022-01-01T10:00:00Z",
        "updated_at": "2022-01-01T11:00:00Z",
        "preview_url": "https://example.signalwire.com/preview/abc123",
        "prioritize_handraise": False,
        "sync_audio_video": True,
    }


def test_reference_example_parses_to_typed_columns() -> None:
    row = parse_session(reference_example(), SID)
    assert set(row) == {*COLUMN_FIELDS, "raw"}
    assert row["start_time"] == datetime(2022, 1, 1, 10, tzinfo=UTC)
    assert row["duration"] == 120 and row["locked"] is False and row["fps"] == 20
    assert row["cost_in_dollars"] is None  # list-only, absent by id
    assert row["raw"] == reference_example()


def test_fractional_and_offset_timestamps_become_utc() -> None:
    body = reference_example() | {
        "updated_at": "2025-03-11T01:49:51.069Z",
        "start_time": "2025-03-11T03:49:51+02:00",
    }
    row = parse_session(body, SID)
    assert row["updated_at"] == datetime(2025, 3, 11, 1, 49, 51, 69000, tzinfo=UTC)
    assert row["start_time"] == datetime(2025, 3, 11, 1, 49, 51, tzinfo=UTC)


def test_unknown_enum_values_and_extra_fields_are_kept() -> None:
    body = reference_example() | {"quality": "4k", "status": "archived", "brand_new": [1, 2]}
    row = parse_session(body, SID)
    assert row["quality"] == "4k" and row["status"] == "archived"
    assert row["raw"]["brand_new"] == [1, 2]


def test_old_audio_video_sync_name_is_accepted() -> None:
    body = reference_example()
    del body["sync_audio_video"]
    body["audio_video_sync"] = False
    assert parse_session(body, SID)["sync_audio_video"] is False


def test_list_only_fields_are_parsed_when_present() -> None:
    body = reference_example() | {
        "cost_in_dollars": 0.25,
        "enable_room_previews": True,
        "locked_cover": "cover.png",
    }
    row = parse_session(body, SID)
    assert (row["cost_in_dollars"], row["enable_room_previews"], row["locked_cover"]) == (
        0.25,
        True,
        "cover.png",
    )


def test_uppercase_id_in_body_matches_canonical_request() -> None:
    body = reference_example() | {"id": SID.upper()}
    assert parse_session(body, SID)["id"] == SID


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "a1b2c3d4-5e6f-7890-abcd-ef1234567890"}, "not " + SID),
        ({"id": None}, "id is missing"),
        ({"duration": "long"}, "'duration'"),
        ({"duration": 1.5}, "'duration'"),
        ({"locked": "no"}, "'locked'"),
        ({"locked": None}, "'locked'"),
        ({"max_members": True}, "'max_members'"),
        ({"created_at": "yesterday"}, "'created_at'"),
        ({"room_id": "room-1"}, "'room_id'"),
        ({"fps": "30"}, "'fps'"),
        ({"name": 7}, "'name'"),
        ({"duration": 3_000_000_000}, "fits 32 bits"),
        ({"duration": 1e20}, "fits 32 bits"),
        ({"duration": float("inf")}, "'duration'"),
        ({"fps": float("nan")}, "'fps'"),
        ({"name": "a\x00b"}, "NUL"),
        ({"extra": {"deep": ["x\x00"]}}, "NUL"),
        ({"name": "\ud800"}, "surrogate"),
        ({"extra": {"\udfff key": 1}}, "surrogate"),
        ({"extra": float("inf")}, "does not fit a float"),
        ({"extra": [1, {"x": float("-inf")}]}, "does not fit a float"),
        ({"extra": float("nan")}, "does not fit a float"),
        ({"extra": json.loads("[" * 40 + "]" * 40)}, "nested more than"),
        ({"start_time": "0001-01-01T00:00:00+01:00"}, "'start_time'"),
    ],
)
def test_wrong_bodies_are_rejected_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_session(reference_example() | change, SID)


def test_missing_required_key_is_rejected_but_missing_nullable_is_null() -> None:
    body = reference_example()
    del body["updated_at"]
    with pytest.raises(PayloadError, match="updated_at"):
        parse_session(body, SID)
    body = reference_example()
    del body["layout"]
    assert parse_session(body, SID)["layout"] is None


def test_non_object_body_is_rejected() -> None:
    with pytest.raises(PayloadError, match="list"):
        parse_session([reference_example()], SID)


def test_every_generated_session_parses_in_both_shapes() -> None:
    for session in generate_sessions(200, seed=3):
        assert parse_session(session, session["id"])["id"] == session["id"]
        assert parse_session(by_id_view(session), session["id"])["cost_in_dollars"] is None


def test_canonical_uuid_rejects_near_misses() -> None:
    for bad in ("", SID[:-1], SID + "0", "g" * 32, "{" + SID, SID.replace("-", "")):
        with pytest.raises(ValueError):
            canonical_uuid(bad)


def test_bodies_that_can_be_stored_are_kept_verbatim() -> None:
    body = reference_example() | {
        "name": "Café 🚀 \u2028",
        "extra": {"n": 10**30, "x": 1e308, "nested": json.loads("[" * 30 + "]" * 30)},
    }
    assert parse_session(body, SID)["raw"] == body


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2025-03-11T01:49:51z", datetime(2025, 3, 11, 1, 49, 51, tzinfo=UTC)),
        ("2025-03-11t01:49:51z", datetime(2025, 3, 11, 1, 49, 51, tzinfo=UTC)),
        ("2025-03-11t03:49:51+02:00", datetime(2025, 3, 11, 1, 49, 51, tzinfo=UTC)),
        # -00:00 (RFC 3339 section 4.3): UTC known, local offset unknown -- the same instant
        ("2025-03-11T01:49:51-00:00", datetime(2025, 3, 11, 1, 49, 51, tzinfo=UTC)),
        # more than six fractional digits: truncated to the microsecond, never rounded up
        ("2025-03-11T01:49:51.123456789z", datetime(2025, 3, 11, 1, 49, 51, 123456, tzinfo=UTC)),
        # a leap second: stored as PostgreSQL stores it, the next day's first instant
        ("2016-12-31T23:59:60Z", datetime(2017, 1, 1, tzinfo=UTC)),
        ("2017-01-01T05:29:60.5+05:30", datetime(2017, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        # year 0000 is valid RFC 3339 text; with this offset the moment is in year 1
        ("0000-12-31T23:30:00-01:00", datetime(1, 1, 1, 0, 30, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999+00:00", datetime(9999, 12, 31, 23, 59, 59, 999999, UTC)),
    ],
)
def test_every_rfc3339_form_is_read_as_its_utc_moment(text: str, moment: datetime) -> None:
    row = parse_session(reference_example() | {"start_time": text, "updated_at": text}, SID)
    assert row["start_time"] == row["updated_at"] == moment
    assert row["raw"]["start_time"] == text  # the body is kept as it came


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:59:60Z",
        "0000-06-01T00:00:00Z",
        "0000-12-31T23:59:59z",
    ],
)
def test_a_moment_outside_years_1_to_9999_is_refused_as_unstorable(text: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_session(reference_example() | {"end_time": text}, SID)
    message = str(info.value)
    assert "'end_time'" in message and "cannot be stored" in message and "1-9999" in message
    assert "ISO 8601" not in message and "RFC 3339 timestamp" not in message


@pytest.mark.parametrize(
    "text",
    [
        "2025-02-29T00:00:00Z",  # no such day
        "2025-03-11T12:00:60Z",  # second 60 only at a leap second, 23:59:60 UTC
        "2025-03-11T01:49:61Z",
        "2025-03-11T01:49:51+24:00",
        "2025-03-11T01:49:51+01:60",
        "2025-03-11T01:49:51Zz",
        "yesterday",
    ],
)
def test_text_that_is_not_a_timestamp_is_refused_as_such(text: str) -> None:
    with pytest.raises(PayloadError, match="'end_time' should be an RFC 3339 timestamp"):
        parse_session(reference_example() | {"end_time": text}, SID)


def _outcome(parse: Any, text: str) -> object:
    """What a timestamp reader makes of `text`: its moment (with its tzinfo), or its error."""
    try:
        moment = parse(text)
    except (ValueError, TimestampRangeError) as exc:
        return type(exc)
    return (moment, moment.tzinfo)


def _timestamp_texts() -> list[str]:
    dates = ("2025-03-11", "0001-01-01", "9999-12-31", "0000-12-31", "2024-02-29", "2025-02-29")
    times = ("01:49:51", "23:59:59", "23:59:60", "00:00:00", "12:00:60", "24:00:00")
    fractions = ("", ".", ",5", *(".123456789"[: n + 1] for n in range(1, 10)))
    offsets = ("Z", "z", "+00:00", "-00:00", "+01:30", "-01:00", "+23:59", "+24:00", "+00:60", "")
    texts = [
        f"{date}{sep}{time}{fraction}{offset}"
        for date, sep, time, fraction, offset in itertools.product(
            dates, ("T", "t", " ", "x"), times, fractions, offsets
        )
    ]
    return [*texts, "2025-W11-2T01:49:51Z", "2025-03-11T01:49Z", "2025-03-11", "20250311T014951Z"]


def test_the_fast_reading_of_a_timestamp_is_the_full_one() -> None:
    """parse_timestamp reads the usual `...Z` text with datetime.fromisoformat; for every text,
    the moment (or the refusal) is the one its full RFC 3339 reading gives."""
    for text in _timestamp_texts():
        assert _outcome(parse_timestamp, text) == _outcome(_parse_rfc3339, text), text


def test_canonical_uuid_of_any_accepted_form_is_the_lowercase_hyphenated_text() -> None:
    for _ in range(200):
        value = uuid.uuid4()
        text = str(value)
        for form in (text, text.upper(), "{" + text + "}", "urn:uuid:" + text, text.title()):
            assert canonical_uuid(form) == text


_FLAT_BODIES: list[dict[Any, Any]] = [
    {},
    {"a": "x", "b": 1, "c": 2.5, "d": True, "e": None, "f": "Café 🚀"},
    {"a": "x\x00y"},
    {"a\x00": 1},
    {"a": "\ud800"},
    {"\udfff": "x"},
    {"a": "x\ud83d", "b": "\ude00y"},  # a pair only if the two strings were one: they are not
    {"a\ud83d": "\ude00"},
    {"a": math.nan},
    {"a": 1.0, "b": -math.inf},
    {"a": 10**30, "b": -(10**30)},
    {"a": "x", "b": {"c": "\x00"}},
    {"a": ["\ud800"]},
    {"a": {"b": 1}},
    {1: "x"},
]


@pytest.mark.parametrize("body", _FLAT_BODIES, ids=range(len(_FLAT_BODIES)))
def test_unstorable_says_of_a_flat_body_what_the_full_walk_says(body: dict[Any, Any]) -> None:
    """An object of scalars is checked in one piece: the verdict (and the reason, the first one
    in the body's order) is the full walk's."""
    try:
        expected: object = _unstorable(body, 0)
    except TypeError as exc:  # a key that is not text: not from JSON
        expected = type(exc)
    try:
        got: object = unstorable(body)
    except TypeError as exc:
        got = type(exc)
    assert got == expected


def test_a_lone_surrogate_next_to_its_would_be_pair_is_refused() -> None:
    body = reference_example() | {"display_name": "x\ud83d", "name": "\ude00"}
    with pytest.raises(PayloadError, match="lone UTF-16 surrogate"):
        parse_session(body, SID)


def test_true_and_false_are_refused_wherever_a_boolean_is_not_wanted() -> None:
    """And a boolean field takes true and false only (not 1 or 0)."""
    for name, check, _ in FIELD_KINDS:
        boolean = check is check_boolean
        for value in (True, False) if not boolean else (True, False, 1, 0):
            body = reference_example() | {name: value}
            if boolean and isinstance(value, bool):
                assert parse_session(body, SID)[name] is value  # type: ignore[literal-required]
            else:
                with pytest.raises(PayloadError, match=f"field '{name}' should be"):
                    parse_session(body, SID)
