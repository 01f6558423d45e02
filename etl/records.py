"""Payload -> typed row: validation of one room session body, independent of HTTP and SQL.

A body that does not describe the session asked for, or whose fields have the wrong types, raises
PayloadError and is not stored. Enum-like strings (quality, status, layout) are open sets: any
string is kept as it comes.

A body is also refused, whichever field holds it, when it could not be stored exactly as valid
JSON on both backends: a NUL character (PostgreSQL refuses it), a lone UTF-16 surrogate such as
"\\ud800" (not a Unicode character: no UTF-8 encoding exists), a number that is not finite
(NaN, Infinity, or one that overflows a 64-bit float, such as 1e999), or nesting deeper than
MAX_DEPTH. Storing a replacement would not be the session the API sent, so the id fails with
the reason, is kept in the failure ledger and is asked for again by later runs.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, cast

from .errors import PayloadError, TimestampRangeError

STRING_FIELDS = ("name", "display_name", "quality", "layout", "status", "preview_url")
INTEGER_FIELDS = ("max_members", "remove_after_seconds_elapsed", "duration")
NUMBER_FIELDS = ("fps",)
REQUIRED_BOOLEAN_FIELDS = (
    "record_on_start",
    "tone_on_entry_and_exit",
    "room_join_video_off",
    "user_join_video_off",
    "locked",
)
BOOLEAN_FIELDS = ("prioritize_handraise", "sync_audio_video")
REQUIRED_TIMESTAMP_FIELDS = ("created_at", "updated_at")
TIMESTAMP_FIELDS = ("join_from", "join_until", "remove_at", "start_time", "end_time")

# Fields the list endpoint returns and get-by-id omits; a refresh that lacks them keeps them.
LIST_ONLY_FIELDS = ("cost_in_dollars", "enable_room_previews", "locked_cover")
LIST_ONLY_KINDS = {
    "cost_in_dollars": "number",
    "enable_room_previews": "boolean",
    "locked_cover": "string",
}

_ALIASES = {"sync_audio_video": "audio_video_sync"}  # older material's name for the same field


class SessionRow(TypedDict):
    """One parsed room session: its column values, and the body as it came (`raw`)."""

    id: str
    room_id: str | None
    name: str | None
    display_name: str | None
    quality: str | None
    layout: str | None
    status: str | None
    preview_url: str | None
    max_members: int | None
    remove_after_seconds_elapsed: int | None
    duration: int | None
    fps: float | None
    record_on_start: bool
    tone_on_entry_and_exit: bool
    room_join_video_off: bool
    user_join_video_off: bool
    locked: bool
    prioritize_handraise: bool | None
    sync_audio_video: bool | None
    created_at: datetime
    updated_at: datetime
    join_from: datetime | None
    join_until: datetime | None
    remove_at: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    cost_in_dollars: float | None
    enable_room_previews: bool | None
    locked_cover: str | None
    raw: dict[str, Any]


# RFC 4122's string form, 8-4-4-4-12 ASCII hex digits, either case; also inside braces (the
# Microsoft GUID form) or after `urn:uuid:` (RFC 4122's URN). uuid.UUID() alone accepts far more:
# any number of hyphens anywhere, fullwidth and other Unicode digits, 32 bare hex digits.
_UUID_TEXT = re.compile(
    r"(?:urn:uuid:(?P<urn>{h})|\{{(?P<braced>{h})\}}|(?P<plain>{h}))".format(
        h=r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    ),
    re.ASCII | re.IGNORECASE,
)

_CANONICAL_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII
)


def canonical_uuid(value: object) -> str:
    """Lowercase hyphenated UUID text; raises ValueError for anything that is not a UUID.

    Accepted: the canonical form in any case, `{...}` and `urn:uuid:...` around it. Refused:
    32 hex digits without hyphens, misplaced or extra hyphens, non-ASCII digits.
    """
    if type(value) is str and _CANONICAL_UUID.fullmatch(value):
        return value  # already canonical (the API's form): what the parse below would return
    match = _UUID_TEXT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not a UUID: {value!r}")
    return str(uuid.UUID(match["urn"] or match["braced"] or match["plain"]))


# RFC 3339's date-time (section 5.6): `T` and `Z` in either case (section 5.6's notes; a space
# for the `T` too), any number of fractional digits, second 60 for a leap second, an offset `Z`
# or +hh:mm / -hh:mm.
_RFC3339 = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[Tt ]"
    r"(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?:(?P<zulu>[Zz])|(?P<sign>[+-])(?P<off_hour>\d{2}):(?P<off_minute>\d{2}))",
    re.ASCII,
)
_CYCLE_YEARS = 400  # the Gregorian calendar repeats every 400 years (146,097 days, whole weeks)


def parse_timestamp(value: str) -> datetime:
    """Timestamp text -> aware UTC datetime.

    RFC 3339 date-times in every form its grammar allows are read exactly: lower-case `t`/`z`,
    any number of fractional digits (truncated to microseconds), `-00:00` (RFC 3339 section 4.3:
    the moment is known in UTC, the local offset is not -- the same instant as `Z`), year 0000
    when the offset brings it into year 1, and a leap second `23:59:60Z`, which becomes the next
    day's 00:00:00 as PostgreSQL stores it. Other ISO 8601 forms that `datetime.fromisoformat`
    reads are still accepted as before; text without an offset is taken as UTC.

    Raises TimestampRangeError when the moment in UTC falls outside years 1-9999, ValueError
    for anything else that is not a timestamp.
    """
    # The usual text (`...Z`, at most 6 fractional digits) is read by `fromisoformat` in C: its
    # UTC result is the moment the grammar below gives (tests/test_records.py compares the two).
    # Anything else it reads or refuses (an offset, a leap second, year 0000, lower-case `t`/`z`)
    # is read below, as before.
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        pass
    else:
        if parsed.tzinfo is UTC:
            return parsed
    return _parse_rfc3339(value)


def _parse_rfc3339(value: str) -> datetime:
    """parse_timestamp's full reading: RFC 3339 by its grammar, other ISO 8601 forms by
    `datetime.fromisoformat`."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        return _parse_iso8601(value)
    year, second = int(match["year"]), int(match["second"])
    shift = _CYCLE_YEARS if year == 0 else 0  # year 0000 is valid RFC 3339; datetime starts at 1
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    local = datetime(
        year + shift,
        int(match["month"]),
        int(match["day"]),
        int(match["hour"]),
        int(match["minute"]),
        min(second, 59),
        int(fraction),
    )  # ValueError for a day, hour or minute out of range
    if second > 60:
        raise ValueError(f"second {second} is out of range")
    offset = timedelta(0)
    if match["sign"] is not None:
        off_hour, off_minute = int(match["off_hour"]), int(match["off_minute"])
        if off_hour > 23 or off_minute > 59:
            raise ValueError("the offset is out of range")
        offset = timedelta(hours=off_hour, minutes=off_minute)
        offset = -offset if match["sign"] == "-" else offset
    try:
        utc = local - offset
        if second == 60:
            if (utc.hour, utc.minute) != (23, 59):
                raise ValueError("a leap second other than at 23:59:60 UTC")
            utc += timedelta(seconds=1)
    except OverflowError:
        raise TimestampRangeError(value) from None
    if not 1 <= utc.year - shift <= 9999:
        raise TimestampRangeError(value)
    return utc.replace(year=utc.year - shift, tzinfo=UTC)


def _parse_iso8601(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise TimestampRangeError(value) from None


INT32 = 2**31 - 1  # the integer columns are 32-bit on both backends


def _check_integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("an integer")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise TypeError("an integer")
    if not -INT32 - 1 <= value <= INT32:
        raise TypeError("an integer that fits 32 bits")
    return int(value)


def _check_string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    if "\x00" in value:
        raise TypeError("a string without NUL characters")
    return value


def _check_number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError("a number")
    return value


def _check_boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("a boolean")
    return value


def _check_timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("an RFC 3339 timestamp")
    try:
        return parse_timestamp(value)
    except TimestampRangeError:
        raise TypeError(
            "a moment within years 1-9999 in UTC (this one cannot be stored: no timestamp "
            "column reaches it)"
        ) from None
    except ValueError:
        raise TypeError("an RFC 3339 timestamp") from None


def _check_uuid(value: Any) -> str:
    try:
        return canonical_uuid(value)
    except (ValueError, TypeError):
        raise TypeError("a UUID") from None


_KIND_CHECKS: dict[str, Callable[[Any], Any]] = {
    "string": _check_string,
    "integer": _check_integer,
    "number": _check_number,
    "boolean": _check_boolean,
    "timestamp": _check_timestamp,
    "uuid": _check_uuid,
}


def _field_kinds() -> Iterator[tuple[str, str, bool]]:
    """(field, kind, required) for every column-backed field of the payload."""
    yield "room_id", "uuid", False
    for names, kind, required in (
        (STRING_FIELDS, "string", False),
        (INTEGER_FIELDS, "integer", False),
        (NUMBER_FIELDS, "number", False),
        (REQUIRED_BOOLEAN_FIELDS, "boolean", True),
        (BOOLEAN_FIELDS, "boolean", False),
        (REQUIRED_TIMESTAMP_FIELDS, "timestamp", True),
        (TIMESTAMP_FIELDS, "timestamp", False),
    ):
        for name in names:
            yield name, kind, required
    for name, kind in LIST_ONLY_KINDS.items():
        yield name, kind, False


FIELD_KINDS: tuple[tuple[str, Callable[[Any], Any], bool], ...] = tuple(
    (name, _KIND_CHECKS[kind], required) for name, kind, required in _field_kinds()
)
COLUMN_FIELDS: tuple[str, ...] = ("id", *(name for name, _, _ in FIELD_KINDS))


def parse_session(payload: Any, requested_id: str) -> SessionRow:
    """Validate one API body for `requested_id` and return the row's column values plus `raw`.

    Missing nullable keys become None; missing required keys, a wrong id or a wrong type raise
    PayloadError naming the field.
    """
    if not isinstance(payload, dict):
        raise PayloadError(f"the body is a JSON {type(payload).__name__}, not an object")
    body_id = payload.get("id")
    try:
        canonical_id = canonical_uuid(body_id)
    except (ValueError, TypeError):
        raise PayloadError(f"the body's id is missing or not a UUID: {body_id!r}") from None
    if canonical_id != requested_id:
        raise PayloadError(f"the body describes session {canonical_id}, not {requested_id}")
    row: dict[str, Any] = {"id": canonical_id}
    for name, check, required in FIELD_KINDS:
        value = payload.get(name)
        if value is None and name in _ALIASES and name not in payload:
            value = payload.get(_ALIASES[name])
        if value is None:
            if required:
                raise PayloadError(f"field {name!r} is missing or null")
            row[name] = None
        elif (value is True or value is False) and check is _check_boolean:
            row[name] = value  # what _check_boolean returns, without the call
        else:
            try:
                row[name] = check(value)
            except TypeError as exc:
                raise PayloadError(f"field {name!r} should be {exc}, got {value!r}") from None
    problem = unstorable(payload)
    if problem is not None:
        raise PayloadError(f"the body cannot be stored: {problem}")
    row["raw"] = payload
    return cast(SessionRow, row)


MAX_DEPTH = 32  # a room session is 2 levels deep; the vendor's other objects, a few more


def unstorable(value: Any, depth: int = 0) -> str | None:
    """Why a decoded JSON value cannot be stored exactly as valid JSON, or None when it can."""
    if depth == 0 and type(value) is dict and _flat_and_storable(value):
        return None
    return _unstorable(value, depth)


_SCALARS = (int, bool, type(None))


def _flat_and_storable(body: dict[Any, Any]) -> bool:
    """True when `body` is an object of scalars only (a room session is) that `_unstorable`
    would pass: its text is checked in one piece, which has a NUL or a lone surrogate exactly
    when one of its parts has (Python never pairs surrogates across strings). False means
    "not known": `_unstorable` then looks, and says what it finds first."""
    texts = list(body)
    for value in body.values():
        kind = type(value)
        if kind is str:
            texts.append(value)
        elif kind is float:
            if not math.isfinite(value):
                return False
        elif kind not in _SCALARS:
            return False
    try:
        text = "".join(texts)  # TypeError for a key that is not text: not from JSON
    except TypeError:
        return False
    return "\x00" not in text and (text.isascii() or _encodes(text))


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unstorable(value: Any, depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return f"it is nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, str):
        return _unstorable_text(value)
    if isinstance(value, float):
        return None if math.isfinite(value) else f"a number that does not fit a float ({value})"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _unstorable_text(key) or _unstorable(item, depth + 1)
            if problem is not None:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = _unstorable(item, depth + 1)
            if problem is not None:
                return problem
    return None


def _unstorable_text(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character, which PostgreSQL cannot store"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone UTF-16 surrogate, which is not a character and has no UTF-8 form"
    return None


# The field checkers under public names, for the parsers of the other bodies (etl/bill_records.py):
# each returns the value as it is stored, or raises TypeError naming what was expected.
check_string = _check_string
check_integer = _check_integer
check_number = _check_number
check_boolean = _check_boolean
check_timestamp = _check_timestamp
check_uuid = _check_uuid
