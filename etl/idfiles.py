"""Ids from the user: command-line arguments, id files, pipes and stdin, checked before any
request.

One pass reads the input, checks every line, drops duplicates and writes the canonical ids to a
private temporary file; the run then streams that file. So any readable source works (a regular
file, a FIFO, `<(...)` process substitution, `/dev/stdin`, `-`), the promise "every id is
checked before the first request" holds even if the file changes during the run, and a file of
millions of ids never sits in memory as strings (only a 128-bit integer per distinct id does).

Bounds: a line longer than MAX_LINE_CHARS or an input larger than MAX_INPUT_BYTES is refused
(exit 2) instead of being read into memory. A UTF-8 byte order mark at the start is ignored.

An input that yields no id -- nothing at all, only blank lines and `#` comments, or only invalid
lines left out by --skip-invalid -- is an error (`require_ids`) unless the caller allows it: a
producer that failed (`roomsync backfill <(query)`, `query | roomsync backfill -`) writes
nothing, and a run that fetched nothing must not look like a run that fetched everything.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from typing import IO

from .errors import InputError
from .records import canonical_uuid

MAX_LINE_CHARS = 4096  # an id is 36; room for comments and spaces, not for a runaway line
MAX_INPUT_BYTES = 4 << 30  # about 100 million ids
BOM = "\ufeff"


class IdSource:
    """Validated, distinct room session ids, in input order; iterate as often as needed."""

    def __init__(
        self,
        lines: Iterable[str],
        *,
        skip_invalid: bool = False,
        label: str = "line",
        max_shown: int = 5,
        skip_hint: str = "use --skip-invalid",
    ) -> None:
        self._spool: IO[str] = tempfile.TemporaryFile("w+", encoding="ascii")  # noqa: SIM115
        self.count = 0
        self.invalid = 0
        self.lines = 0  # every line read, blank and comment lines included
        self.name = "the input"
        self.piped = False  # read from a pipe or socket: its producer may have failed
        try:
            bad = self._check_and_spool(lines, max_shown)
        except BaseException:
            self._spool.close()
            raise
        if self.invalid and not skip_invalid:
            self._spool.close()
            shown = ", ".join(f"{label} {n}: {value[:60]!r}" for n, value in bad)
            more = f" and {self.invalid - len(bad)} more" if self.invalid > len(bad) else ""
            raise InputError(
                f"{self.invalid} invalid id(s): {shown}{more} ({skip_hint} to proceed without them)"
            )

    def _check_and_spool(self, lines: Iterable[str], max_shown: int) -> list[tuple[int, str]]:
        seen: set[int] = set()
        bad: list[tuple[int, str]] = []
        for number, text in _numbered_values(self._counted(lines)):
            try:
                canonical = canonical_uuid(text)
            except ValueError:
                self.invalid += 1
                if len(bad) < max_shown:
                    bad.append((number, text))
                continue
            key = uuid.UUID(canonical).int
            if key not in seen:
                seen.add(key)
                self.count += 1
                self._spool.write(canonical + "\n")
        self._spool.flush()
        return bad

    def _counted(self, lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            self.lines += 1
            yield line

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[str]:
        self._spool.seek(0)
        for line in self._spool:
            yield line.rstrip("\n")

    @classmethod
    def from_path(
        cls, path: str, *, skip_invalid: bool = False, skip_hint: str = "use --skip-invalid"
    ) -> IdSource:
        """Ids from a file, FIFO or device, or from stdin for `-`. Call `close` when done."""
        try:
            if path == "-":  # as UTF-8 whatever the locale, like the files
                stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", newline=None)
                try:
                    source = cls(
                        _bounded_lines(stdin, path), skip_invalid=skip_invalid, skip_hint=skip_hint
                    )
                    source.piped = _is_pipe(stdin)
                finally:
                    stdin.detach()
            else:
                with open(path, encoding="utf-8", newline=None) as handle:
                    source = cls(
                        _bounded_lines(handle, path), skip_invalid=skip_invalid, skip_hint=skip_hint
                    )
                    source.piped = _is_pipe(handle)
        except (OSError, UnicodeError) as exc:
            raise InputError(f"cannot read {path}: {exc}") from None
        source.name = "stdin" if path == "-" else path
        return source

    def close(self) -> None:
        self._spool.close()


def _is_pipe(handle: IO[str]) -> bool:
    """A FIFO or socket: `<(...)` process substitution, `cmd | roomsync backfill -`, a named
    pipe. (Not a terminal, a regular file, /dev/null, or a stream without a descriptor.)"""
    try:
        mode = os.fstat(handle.fileno()).st_mode
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def require_ids(source: IdSource, allow_hint: str) -> None:
    """Raise InputError (exit 2) when `source` yielded no id; `allow_hint` names the switch that
    accepts an empty input (`--allow-empty` on the command line)."""
    if source.count:
        return
    if source.invalid:
        what = f"no id: all {source.invalid} id line(s) of {source.name} were invalid and skipped"
    elif source.lines:
        what = f"the input was empty: {source.name} holds only blank lines and # comments"
    else:
        what = f"the input was empty: nothing was read from {source.name}"
    producer = " (a pipe: the command writing it may have failed)" if source.piped else ""
    raise InputError(f"{what}{producer}; {allow_hint} accepts an input without ids")


def _bounded_lines(handle: IO[str], name: str) -> Iterator[str]:
    """The lines of a text stream, refusing a runaway line or input before it fills memory."""
    total = 0
    first = True
    while True:
        line = handle.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
            raise InputError(f"{name}: a line is longer than {MAX_LINE_CHARS} characters")
        total += len(line)
        if total > MAX_INPUT_BYTES:
            raise InputError(f"{name}: more than {MAX_INPUT_BYTES >> 20} MiB of input")
        if first:
            line = line.removeprefix(BOM)
            first = False
        yield line


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


def read_ids(
    lines: Iterable[str],
    *,
    skip_invalid: bool = False,
    label: str = "line",
    skip_hint: str = "use --skip-invalid",
) -> list[str]:
    """All valid ids of an in-memory list of lines (see IdSource for the rules)."""
    source = IdSource(lines, skip_invalid=skip_invalid, label=label, skip_hint=skip_hint)
    try:
        return list(source)
    finally:
        source.close()
