"""Payload -> typed row for the rest of the bill: members, recordings, rooms, video log entries.

The counterpart of etl/records.py (room sessions) for the four bodies of
`members-recordings-logs.md`, with the same field checkers and the same storability rule
(`records.unstorable`: no NUL, no lone surrogate, finite numbers, bounded nesting). Each parser
returns the row's column values plus `raw`, or raises PayloadError whose message starts with the
item it is about ("member <id>: ...", "recording <id>: ...") so one bad item costs one item.

What is checked beyond the types of the spec:
- ids are UUIDs; a member or recording listed under a session must name that session;
- durations and sizes are not negative; `size_in_bytes` is 64-bit (the spec's int32 cannot hold
  a file over 2 GiB); other integers are 32-bit as the spec types them;
- an interval does not end before it starts (leave_time/join_time, finished_at/started_at,
  ended_at/started_at).
Enum-like strings (statuses, quality, layout, source, type) are open sets, as for sessions.
Nullability is lenient where a null loses nothing a report needs: required are the keys
(`id`, a member's or recording's `room_session_id`), the timestamps the spec marks required
(`created_at`, `updated_at`), a room's `name` (the match for sessions without a room_id), and a
live log entry's `url` and `charge` (the join key and the money).

The recording `uri` is a temporary signed link: it is taken out of `raw` before anything else
happens and never appears in a row, a message or a log; only its type is checked.

A log entry reported deleted (`include_deleted=true`) comes as `{id, discarded_at, created_at}`
only: it parses to a row with `discarded_at` set and every other column None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypedDict, cast
from urllib.parse import urlsplit

from .errors import PayloadError
from .records import (
    canonical_uuid,
    check_boolean,
    check_integer,
    check_number,
    check_string,
    check_timestamp,
    check_uuid,
    unstorable,
)

Check = Callable[[Any], Any]
FieldSpec = tuple[str, Check, bool]  # (name, checker, required)

INT64 = 2**63 - 1  # BIGINT on both backends
_SHOWN = 80  # characters of a bad value quoted in a message


class MemberRow(TypedDict):
    """One attendance interval of a room session (a member item), plus `raw`."""

    id: str
    room_session_id: str
    name: str | None
    join_time: datetime | None
    leave_time: datetime | None
    duration: int | None
    cost_in_dollars: float | None
    raw: dict[str, Any]


class RecordingRow(TypedDict):
    """One room recording; `raw` is the body without `uri`."""

    id: str
    room_session_id: str
    status: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration: int | None
    size_in_bytes: int | None
    format: str | None
    cost_in_dollars: float | None
    created_at: datetime
    updated_at: datetime
    raw: dict[str, Any]


class RoomRow(TypedDict):
    """One room; `meta` is the customer's JSON object as it came."""

    id: str
    name: str
    display_name: str | None
    description: str | None
    max_members: int | None
    quality: str | None
    fps: float | None
    join_from: datetime | None
    join_until: datetime | None
    remove_at: datetime | None
    remove_after_seconds_elapsed: int | None
    layout: str | None
    record_on_start: bool | None
    tone_on_entry_and_exit: bool | None
    room_join_video_off: bool | None
    user_join_video_off: bool | None
    enable_room_previews: bool | None
    sync_audio_video: bool | None
    prioritize_handraise: bool | None
    meta: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    raw: dict[str, Any]


class ChargeDetail(TypedDict):
    description: str
    charge: float


class ChargeRow(TypedDict):
    """One video log entry (table video_charges); `room_session_id` is parsed from `url`."""

    id: str
    room_session_id: str | None
    source: str | None
    type: str | None
    url: str | None
    room_name: str | None
    status: str | None
    locked: bool | None
    started_at: datetime | None
    ended_at: datetime | None
    charge: float | None
    charge_details: list[ChargeDetail] | None
    created_at: datetime
    discarded_at: datetime | None
    raw: dict[str, Any]


# --------------------------------------------------------------------------- checkers


def check_int64(value: Any) -> int:
    """A whole number that fits a signed 64-bit column."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("an integer")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise TypeError("an integer")
    if not -INT64 - 1 <= value <= INT64:
        raise TypeError("an integer that fits 64 bits")
    return int(value)


def _not_negative(check: Check) -> Check:
    def checked(value: Any) -> Any:
        number = check(value)
        if number < 0:
            raise TypeError("a number that is not negative")
        return number

    return checked


def check_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("a JSON object")
    return value


# Numeric text as JSON writes numbers (the conference-logs API types charges as strings).
_NUMERIC_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def check_amount(value: Any) -> float:
    """Dollars as a JSON number or as numeric text ("0.005"); finite either way."""
    if isinstance(value, str):
        if _NUMERIC_TEXT.fullmatch(value.strip()) is None:
            raise TypeError("a number or numeric text")
        amount = float(value)
        if not math.isfinite(amount):
            raise TypeError("a number that fits a float")
        return amount
    return float(check_number(value))


_DURATION = _not_negative(check_integer)
_SIZE = _not_negative(check_int64)


# --------------------------------------------------------------------------- fields per kind

MEMBER_FIELDS: tuple[FieldSpec, ...] = (
    ("name", check_string, False),
    ("join_time", check_timestamp, False),
    ("leave_time", check_timestamp, False),
    ("duration", _DURATION, False),
    ("cost_in_dollars", check_number, False),
)

RECORDING_FIELDS: tuple[FieldSpec, ...] = (
    ("status", check_string, False),
    ("started_at", check_timestamp, False),
    ("finished_at", check_timestamp, False),
    ("duration", _DURATION, False),
    ("size_in_bytes", _SIZE, False),
    ("format", check_string, False),
    ("cost_in_dollars", check_number, False),
    ("created_at", check_timestamp, True),
    ("updated_at", check_timestamp, True),
)

ROOM_FIELDS: tuple[FieldSpec, ...] = (
    ("name", check_string, True),
    ("display_name", check_string, False),
    ("description", check_string, False),
    ("max_members", check_integer, False),
    ("quality", check_string, False),
    ("fps", check_number, False),
    ("join_from", check_timestamp, False),
    ("join_until", check_timestamp, False),
    ("remove_at", check_timestamp, False),
    ("remove_after_seconds_elapsed", check_integer, False),
    ("layout", check_string, False),
    ("record_on_start", check_boolean, False),
    ("tone_on_entry_and_exit", check_boolean, False),
    ("room_join_video_off", check_boolean, False),
    ("user_join_video_off", check_boolean, False),
    ("enable_room_previews", check_boolean, False),
    ("sync_audio_video", check_boolean, False),
    ("prioritize_handraise", check_boolean, False),
    ("meta", check_object, False),
    ("created_at", check_timestamp, True),
    ("updated_at", check_timestamp, True),
)
_ROOM_EXTRA: tuple[FieldSpec, ...] = (("active_session", check_object, False),)  # raw only

CHARGE_FIELDS: tuple[FieldSpec, ...] = (
    ("source", check_string, False),
    ("type", check_string, False),
    ("url", check_string, True),
    ("room_name", check_string, False),
    ("status", check_string, False),
    ("locked", check_boolean, False),
    ("started_at", check_timestamp, False),
    ("ended_at", check_timestamp, False),
    ("charge", check_amount, True),
    ("created_at", check_timestamp, True),
)

_ALIASES = {"sync_audio_video": "audio_video_sync"}  # older material's name for the same field

MEMBER_COLUMNS = ("id", "room_session_id", *(name for name, _, _ in MEMBER_FIELDS))
RECORDING_COLUMNS = ("id", "room_session_id", *(name for name, _, _ in RECORDING_FIELDS))
ROOM_COLUMNS = ("id", *(name for name, _, _ in ROOM_FIELDS))
CHARGE_COLUMNS = (
    "id",
    "room_session_id",
    *(name for name, _, _ in CHARGE_FIELDS),
    "charge_details",
    "discarded_at",
)


# --------------------------------------------------------------------------- parsers


def parse_member(payload: Any, room_session_id: str | None = None) -> MemberRow:
    """A member item; `room_session_id`, when given, is the session it was listed under."""
    body, item = _object_with_id(payload, "member")
    row: dict[str, Any] = {"id": _id_of(item)}
    row["room_session_id"] = _parent(body, item, room_session_id)
    row |= _fields(body, MEMBER_FIELDS, item)
    _in_order(row, "join_time", "leave_time", item)
    _storable(body, item)
    row["raw"] = body
    return cast(MemberRow, row)


def parse_recording(payload: Any, room_session_id: str | None = None) -> RecordingRow:
    """A recording item or body; its `uri` is dropped first and kept nowhere."""
    uri = None
    if isinstance(payload, dict) and "uri" in payload:
        uri = payload["uri"]
        payload = {key: value for key, value in payload.items() if key != "uri"}
    body, item = _object_with_id(payload, "recording")
    if uri is not None and not isinstance(uri, str):
        raise PayloadError(f"{item}: field 'uri' should be a string or null")  # value not shown
    row: dict[str, Any] = {"id": _id_of(item)}
    row["room_session_id"] = _parent(body, item, room_session_id)
    row |= _fields(body, RECORDING_FIELDS, item)
    _in_order(row, "started_at", "finished_at", item)
    _storable(body, item)
    row["raw"] = body
    return cast(RecordingRow, row)


def parse_room(payload: Any) -> RoomRow:
    body, item = _object_with_id(payload, "room")
    row: dict[str, Any] = {"id": _id_of(item)}
    row |= _fields(body, ROOM_FIELDS, item)
    _fields(body, _ROOM_EXTRA, item)
    _storable(body, item)
    row["raw"] = body
    return cast(RoomRow, row)


def parse_video_log(payload: Any) -> ChargeRow:
    """A video log entry, live or reported deleted ({id, discarded_at, created_at})."""
    body, item = _object_with_id(payload, "log entry")
    row: dict[str, Any] = {name: None for name in CHARGE_COLUMNS}
    row["id"] = _id_of(item)
    if body.get("discarded_at") is not None:
        row |= _fields(
            body,
            (("created_at", check_timestamp, True), ("discarded_at", check_timestamp, True)),
            item,
        )
    else:
        row |= _fields(body, CHARGE_FIELDS, item)
        row["room_session_id"] = _session_in_url(row["url"], item)
        row["charge_details"] = _charge_details(body.get("charge_details"), item)
        _in_order(row, "started_at", "ended_at", item)
    _storable(body, item)
    row["raw"] = body
    return cast(ChargeRow, row)


# --------------------------------------------------------------------------- helpers


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _object_with_id(payload: Any, kind: str) -> tuple[dict[str, Any], str]:
    """The body as a dict and the name of the item ("member <uuid>") for messages."""
    if not isinstance(payload, dict):
        raise PayloadError(f"a {kind} item is a JSON {type(payload).__name__}, not an object")
    body_id = payload.get("id")
    try:
        canonical = canonical_uuid(body_id)
    except (ValueError, TypeError):
        raise PayloadError(
            f"a {kind} item's id is missing or not a UUID: {_shown(body_id)}"
        ) from None
    return payload, f"{kind} {canonical}"


def _id_of(item: str) -> str:
    return item.rpartition(" ")[2]


def _parent(body: dict[str, Any], item: str, expected: str | None) -> str:
    value = body.get("room_session_id")
    try:
        parent = check_uuid(value)
    except TypeError:
        raise PayloadError(
            f"{item}: field 'room_session_id' is missing or not a UUID: {_shown(value)}"
        ) from None
    if expected is not None and parent != canonical_uuid(expected):
        raise PayloadError(f"{item}: listed under session {expected} but names session {parent}")
    return parent


def _fields(body: dict[str, Any], fields: Sequence[FieldSpec], item: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, check, required in fields:
        key = name if name in body or name not in _ALIASES else _ALIASES[name]
        value = body.get(key)
        if value is None:
            if required:
                raise PayloadError(f"{item}: field {name!r} is missing or null")
            row[name] = None
            continue
        try:
            row[name] = check(value)
        except TypeError as exc:
            raise PayloadError(
                f"{item}: field {name!r} should be {exc}, got {_shown(value)}"
            ) from None
    return row


def _in_order(row: dict[str, Any], start: str, end: str, item: str) -> None:
    if row[start] is not None and row[end] is not None and row[end] < row[start]:
        raise PayloadError(
            f"{item}: {end} ({row[end].isoformat()}) is before {start} ({row[start].isoformat()})"
        )


def _storable(body: dict[str, Any], item: str) -> None:
    problem = unstorable(body)
    if problem is not None:
        raise PayloadError(f"{item}: the body cannot be stored: {problem}")


_SESSION_PATH = re.compile(r".*/room_sessions/(?P<id>[^/]*)/?")


def _session_in_url(url: str, item: str) -> str | None:
    """The session id in `.../api/video/room_sessions/{id}` (absolute or relative), or None
    when the url names something else (then the charge is kept, attributed to no session)."""
    try:
        path = urlsplit(url).path
    except ValueError:
        raise PayloadError(f"{item}: field 'url' is not a URL: {_shown(url)}") from None
    match = _SESSION_PATH.fullmatch(path)
    if match is None:
        return None
    try:
        return canonical_uuid(match["id"])
    except ValueError:
        raise PayloadError(f"{item}: field 'url' names no valid session: {_shown(url)}") from None


def _charge_details(value: Any, item: str) -> list[ChargeDetail] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise PayloadError(f"{item}: field 'charge_details' should be a list, got {_shown(value)}")
    details: list[ChargeDetail] = []
    for index, entry in enumerate(value):
        where = f"{item}: charge_details[{index}]"
        if not isinstance(entry, dict):
            raise PayloadError(f"{where} should be an object, got {_shown(entry)}")
        description, charge = entry.get("description"), entry.get("charge")
        try:
            details.append(
                {"description": check_string(description), "charge": check_amount(charge)}
            )
        except TypeError as exc:
            raise PayloadError(
                f"{where} should have a string description and a charge that is {exc}, "
                f"got {_shown(entry)}"
            ) from None
    return details
