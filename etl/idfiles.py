"""Ids from the user: command-line arguments, id files and stdin, validated before any request.

A file is read twice (check everything first, then stream the ids), so a file of a million ids
never sits in memory as strings; stdin is spooled to a temporary file for the second pass.
"""

from __future__ import annotations

import functools
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from .errors import InputError
from .records import canonical_uuid


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
