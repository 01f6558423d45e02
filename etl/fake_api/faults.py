"""Scripted misbehaviour (fault words) and the canned responses the stand-in sends."""

from __future__ import annotations

import email.utils
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

ERROR_DOCS_URL = "https://developer.signalwire.com/rest/signalwire-rest/overview/error-codes"

# --------------------------------------------------------------------------- faults


_STATUS_FAULTS = frozenset({"401", "403", "422", "429", "500", "502", "503", "504"})
_PLAIN_FAULTS = frozenset({"reset", "badjson", "truncate", "mismatch", "badtypes"})


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour; `kind` is "status", "slow" or one of the plain fault words."""

    kind: str
    status: int = 0
    retry_after: str | None = None
    retry_after_date: float | None = None
    seconds: float = 0.0


def parse_fault(word: str) -> Fault:
    """Parse a fault word; raise ValueError for anything unknown, so typos fail loudly.

    "429:VALUE" sends VALUE verbatim as Retry-After (so "429:0", "429:-5" or "429:soon" can
    test clients against useless hints); "429:date:N" sends an HTTP date N seconds ahead of the
    response (negative N: in the past).
    """
    if word in _STATUS_FAULTS:
        return Fault("status", status=int(word))
    if word in _PLAIN_FAULTS:
        return Fault(word)
    head, _, arg = word.partition(":")
    if head == "slow":
        seconds = float(arg)
        if not seconds >= 0:
            raise ValueError(f"slow fault needs a non-negative number of seconds: {word!r}")
        return Fault("slow", seconds=seconds)
    if head == "429" and arg.startswith("date:"):
        return Fault("status", status=429, retry_after_date=float(arg.removeprefix("date:")))
    if head == "429" and arg.strip() and not any(c in arg for c in "\r\n"):
        return Fault("status", status=429, retry_after=arg)
    raise ValueError(f"unknown fault word: {word!r}")


# --------------------------------------------------------------------------- responses


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def error_response(status: int, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A `{"error": "<reason phrase>"}` body, the shape the vendor specifies for non-422s."""
    if status == 422:
        return validation_error("the request is not valid", None)
    return Response(status, _json_bytes({"error": HTTPStatus(status).phrase}), headers)


def validation_error(message: str, attribute: str | None) -> Response:
    error: dict[str, str] = {
        "type": "validation_error",
        "code": "invalid_parameter",
        "message": message,
    }
    if attribute is not None:
        error["attribute"] = attribute
    error["url"] = f"{ERROR_DOCS_URL}#invalid_parameter"
    return Response(422, _json_bytes({"errors": [error]}))


def fault_response(fault: Fault) -> Response:
    """The reply for a status fault, with Retry-After when the fault asks for one."""
    headers: tuple[tuple[str, str], ...] = ()
    if fault.retry_after is not None:
        headers = (("Retry-After", fault.retry_after),)
    elif fault.retry_after_date is not None:
        when = datetime.now(UTC).replace(microsecond=0)
        when += timedelta(seconds=fault.retry_after_date)
        headers = (("Retry-After", email.utils.format_datetime(when, usegmt=True)),)
    return error_response(fault.status, headers)


def _bad_types(view: dict[str, Any]) -> dict[str, Any]:
    return {**view, "duration": "long", "locked": "no", "fps": "fast"}


# Fields a "badtypes" fault breaks in an item of each of the other kinds.
BAD_FIELDS: dict[str, dict[str, Any]] = {
    "members": {"duration": "long", "join_time": 5},
    "recordings": {"size_in_bytes": "big", "duration": "long"},
    "rooms": {"max_members": "many", "record_on_start": "no"},
    "logs": {"charge": "free", "locked": "no"},
}


def bad_item(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    return {**item, **BAD_FIELDS[kind]}
