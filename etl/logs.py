"""Log lines a person can read and a log pipeline can parse, on stderr.

`configure(fmt, verbosity)` is the only logging set-up: `text` lines carry an ISO 8601 UTC
timestamp and the level; `json` lines are one object each with `time`, `level`, `message`, and
the fields a record was given with `extra=` (`session_id`, `status`, `attempt`, `wait_s`,
`done`, `total`...), plus `run_id` and `command` while a run is going (`bind`).

Library chatter stays out: Alembic's set-up lines always, httpx's request lines unless `-v`.
`-q` shows errors only. A progress line on a terminal (`StatusLine`) is cleared before a log
line is written and drawn again after it, so the two never write over each other.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from .config import ENV_LOG_FORMAT as ENV_LOG_FORMAT
from .config import LOG_FORMATS as FORMATS
from .safe_text import json_terminal_safe, visible

#: Verbosity: -1 errors only (-q), 0 the default, 1 also each request (-v).
QUIET, NORMAL, VERBOSE = -1, 0, 1

# Loggers of libraries that stay quiet unless something is wrong (httpx: unless -v).
_LIBRARY_LOGGERS = ("alembic", "sqlalchemy", "httpcore", "asyncio")
_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "roomsync_log_context", default=None
)


class StatusLine(Protocol):
    """A line redrawn in place on a terminal (the progress bar)."""

    def clear(self) -> None: ...

    def redraw(self) -> None: ...


class _State:
    fmt = "text"
    verbosity = NORMAL
    status_line: StatusLine | None = None


def current_format() -> str:
    """The format configured last (`text` before any configuration)."""
    return _State.fmt


def quiet() -> bool:
    """Whether only errors are to be shown (-q)."""
    return _State.verbosity <= QUIET


def set_status_line(line: StatusLine | None) -> None:
    """Register the terminal line that log lines must not write over (None: no such line)."""
    _State.status_line = line


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add `fields` (e.g. run_id, command) to every record logged inside this block, in this
    context and in the tasks and threads it starts."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def _utc_time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields given with `extra=` and bound with `bind`, in that order of precedence."""
    fields = dict(_context.get() or {})
    fields.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
    return fields


class TextFormatter(logging.Formatter):
    """`2026-11-26T05:40:44.123Z WARNING roomsync: message`."""

    def format(self, record: logging.LogRecord) -> str:
        message = visible(record.getMessage())  # no raw control characters from a server
        return f"{_utc_time(record)} {record.levelname} roomsync: {message}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message, logger, then the record's fields.

    Values that are not JSON (datetimes, enums) are written as their text. Tracebacks are not
    written: a message carries what an operator needs, and a traceback may carry locals.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_time(record),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        for key, value in record_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info and record.exc_info[1] is not None:
            entry.setdefault("error_type", type(record.exc_info[1]).__name__)
        return json_terminal_safe(json.dumps(entry, default=str, ensure_ascii=False))


class _Handler(logging.StreamHandler[TextIO]):
    """stderr, resolved when a record is written (so test runners that swap sys.stderr see the
    lines), keeping clear of the progress line on a terminal."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        # Assigned, not setStream(): that flushes the old stream, which a test runner that
        # swapped sys.stderr may have closed since (emit runs under the handler's lock).
        self.stream = sys.stderr
        line = _State.status_line
        if line is not None:
            line.clear()
        super().emit(record)
        if line is not None:
            line.redraw()


def configure(fmt: str = "text", verbosity: int = NORMAL) -> None:
    """Route every log record to stderr in `fmt` at the level `verbosity` asks for."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    _State.fmt = fmt
    _State.verbosity = verbosity
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _Handler):
            root.removeHandler(handler)
    level = logging.ERROR if verbosity <= QUIET else logging.INFO
    handler = _Handler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    # A record of a logger with a level of its own passes root's level by: the handler filters.
    handler.setLevel(logging.ERROR if verbosity <= QUIET else logging.DEBUG)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("etl").setLevel(logging.DEBUG if verbosity >= VERBOSE else level)
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
    httpx_level = logging.INFO if verbosity >= VERBOSE else logging.WARNING
    logging.getLogger("httpx").setLevel(max(httpx_level, level))
