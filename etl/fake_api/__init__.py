"""A local stand-in of SignalWire's Video REST API, for tests and benchmarks.

A real HTTP/1.1 server on loopback (standard library only) that follows the vendor's documented
behaviour for room sessions: Basic auth, get-by-id without the three
list-only fields, a paged list whose `links.next` carries an opaque `PA...` token, 422
bodies in the `errors` shape. It serves the rest of the bill the same way: a session's members
and recordings, rooms, all recordings (with a temporary signed `uri`) and the video logs (date
filters, `include_deleted`), generated consistent with the sessions by `generate_account`.
Faults can be scripted per session id, for the list endpoint, or for any path (`script_path`),
so that retry and error handling can be exercised over a real socket.

Modules: `data` (generated sessions in the vendor's shapes), `faults` (scripted misbehaviour and
canned responses), `server` (sockets and HTTP), `state` (the sessions, the scripted faults, the
request counts, and the public hooks), `__main__` (serve standalone:
`python -m etl.fake_api --port 8080 --sessions 1000 --latency-ms 100`).
"""

from __future__ import annotations

from .data import (
    LIST_ONLY_FIELDS,
    LIST_PATH,
    LOGS_PATH,
    RECORDING_URI_PREFIX,
    RECORDINGS_PATH,
    ROOMS_PATH,
    VideoAccount,
    by_id_view,
    generate_account,
    generate_sessions,
)
from .faults import Fault, parse_fault
from .state import FakeSignalWire

__all__ = [
    "LIST_ONLY_FIELDS",
    "LIST_PATH",
    "LOGS_PATH",
    "RECORDINGS_PATH",
    "RECORDING_URI_PREFIX",
    "ROOMS_PATH",
    "FakeSignalWire",
    "Fault",
    "VideoAccount",
    "by_id_view",
    "generate_account",
    "generate_sessions",
    "parse_fault",
]
