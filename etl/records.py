"""Payload -> typed row: validation of one room session body, independent of HTTP and SQL.

A body that does not describe the session asked for, or whose fields have the wrong types, raises
PayloadError and is not stored. Enum-like strings (quality, status, layout) are open sets: any
string is kept as it comes.
"""

from __future__ import annotations

import functools
import math
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

from .errors import InputError, PayloadError

UUID_FIELDS = ("room_id",)
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

FINAL_STATUSES = frozenset({"completed"})
_ALIASES = {"sync_audio_video": "audio_video_sync"}  # older material's name for the same field


# RFC 4122's string form, 8-4-4-4-12 ASCII hex digits, either case; also inside braces (the
# Microsoft GUID form) or after `urn:uuid:` (RFC 4122's URN). uuid.UUID() alone accepts far more:
# any number of hyphens anywhere, fullwidth and other Unicode digits, 32 bare hex digits.
_UUID_TEXT = re.compile(
    r"(?:urn:uuid:(?P<urn>{h})|\{{(?P<braced>{h})\}}|(?P<plain>{h}))".format(
        h=r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    ),
    re.ASCII | re.IGNORECASE,
)


def canonical_uuid(value: str) -> str:
    """Lowercase hyphenated UUID text; raises ValueError for anything that is not a UUID.

    Accepted: the canonical form in any case, `{...}` and `urn:uuid:...` around it. Refused:
    32 hex digits without hyphens, misplaced or extra hyphens, non-ASCII digits.
    """
    match = _UUID_TEXT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not a UUID: {value!r}")
    return str(uuid.UUID(match["urn"] or match["braced"] or match["plain"]))


def parse_timestamp(value: str) -> datetime:
    """ISO 8601 text -> aware UTC datetime; text without an offset is taken as UTC."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


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
        raise TypeError("an ISO 8601 timestamp")
    try:
        return parse_timestamp(value)
    except (ValueError, OverflowError):
        raise TypeError("an ISO 8601 timestamp") from None


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


def parse_session(payload: Any, requested_id: str) -> dict[str, Any]:
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
        key = name if name in payload or name not in _ALIASES else _ALIASES[name]
        value = payload.get(key)
        if value is None:
            if required:
                raise PayloadError(f"field {name!r} is missing or null")
            row[name] = None
            continue
        try:
            row[name] = check(value)
        except TypeError as exc:
            raise PayloadError(f"field {name!r} should be {exc}, got {value!r}") from None
    if _has_nul(payload):
        raise PayloadError("the body holds a NUL character, which the database cannot store")
    row["raw"] = payload
    return row


def _has_nul(value: Any) -> bool:
    """Whether a NUL character hides anywhere in a JSON value (PostgreSQL refuses them)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class IdSource:
    """Validated room session ids from text lines, streamed in two passes.

    The first pass checks every line before any request is made and finds duplicates; the
    second yields canonical ids in order, each once. Only the duplicate and skipped line numbers
    are kept between passes, so a file of a million ids never sits in memory as strings.
    `open_lines` must return a fresh iterator of the same lines each time it is called.
    """

    def __init__(
        self,
        open_lines: Callable[[], Iterable[str]],
        *,
        skip_invalid: bool = False,
        label: str = "line",
        max_shown: int = 5,
    ) -> None:
        self._open_lines = open_lines
        self._spool: IO[str] | None = None  # set by from_path for stdin
        self._skip: set[int] = set()
        self.count = 0
        self.invalid = 0
        seen: set[int] = set()
        bad: list[tuple[int, str]] = []
        for number, text in _numbered_values(open_lines()):
            try:
                key = uuid.UUID(canonical_uuid(text)).int
            except ValueError:
                self.invalid += 1
                self._skip.add(number)
                if len(bad) < max_shown:
                    bad.append((number, text))
                continue
            if key in seen:
                self._skip.add(number)
            else:
                seen.add(key)
                self.count += 1
        if self.invalid and not skip_invalid:
            shown = ", ".join(f"{label} {n}: {value[:60]!r}" for n, value in bad)
            more = f" and {self.invalid - len(bad)} more" if self.invalid > len(bad) else ""
            raise InputError(
                f"{self.invalid} invalid id(s): {shown}{more} "
                "(use --skip-invalid to proceed without them)"
            )

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[str]:
        for number, text in _numbered_values(self._open_lines()):
            if number not in self._skip:
                yield canonical_uuid(text)

    @classmethod
    def from_path(cls, path: str, *, skip_invalid: bool = False) -> IdSource:
        """Ids from a file, or from stdin for `-` (spooled to a temporary file, since the
        lines are read twice). Call `close` when done."""
        spool: IO[str] | None = None
        try:
            if path == "-":
                spool = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (close)
                shutil.copyfileobj(sys.stdin, spool)
                open_lines: Callable[[], Iterable[str]] = functools.partial(_rewound, spool)
            else:
                open_lines = functools.partial(_file_lines, path)
            source = cls(open_lines, skip_invalid=skip_invalid)
        except (OSError, UnicodeError) as exc:
            if spool is not None:
                spool.close()
            raise InputError(f"cannot read {path}: {exc}") from None
        source._spool = spool
        return source

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


def _file_lines(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as handle:
        yield from handle


def _rewound(spool: IO[str]) -> Iterator[str]:
    spool.seek(0)
    yield from spool


class FailedFirst:
    """The ids waiting in the failure ledger, then the ids of `rest` that are not among them."""

    def __init__(self, failed: list[str], rest: Iterable[str]) -> None:
        self.failed = failed
        self.rest = rest
        known = set(failed)
        self._count = len(failed) + sum(1 for session_id in rest if session_id not in known)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        known = set(self.failed)
        yield from self.failed
        yield from (session_id for session_id in self.rest if session_id not in known)


def _numbered_values(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line number, text) of lines that hold a value: blanks and `#` comments are skipped."""
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if text:
            yield number, text


def read_ids(lines: Iterable[str], *, skip_invalid: bool = False, label: str = "line") -> list[str]:
    """All valid ids of an in-memory list of lines (see IdSource for the rules)."""
    kept = list(lines)
    return list(IdSource(lambda: kept, skip_invalid=skip_invalid, label=label))
