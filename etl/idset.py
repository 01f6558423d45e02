"""`IdSet`: a set of session ids (UUIDs) kept as 16 bytes each, for the walks of a sync.

A first sync lists every session of the account, and the walk must know which ids it has seen
(pages shift while it runs, so an item can come twice). A Python set of the id strings costs
about 120 bytes an id, of 128-bit integers about 75; this costs about 18 (the 16 bytes and the
growth room of their buffer), so a million-session account costs about 18 MB, not 120.

The ids are spread over buckets by a hash of their bytes (Python's keyed hash, so no list of
ids can pile them into one bucket); a bucket is one `bytearray` of 16-byte keys, searched with
`bytearray.find` (C) and grown by appending. The number of buckets doubles once they hold 64
ids on average, so a lookup scans about 1 KiB at most on average.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

KEY_BYTES = 16
_START_BUCKETS = 1024
_MAX_AVERAGE = 64  # ids a bucket holds on average before the buckets double


def _key(session_id: str) -> bytes:
    """The UUID's 16 bytes. The hyphenated 36-character form (what the API sends) is read by
    `bytes.fromhex` (a fifth of `uuid.UUID`'s cost); any other form goes through `uuid.UUID`,
    which also decides what is not a UUID (ValueError)."""
    if len(session_id) == 36 and session_id[8:24:5] == "----":
        try:
            key = bytes.fromhex(session_id.replace("-", ""))
        except ValueError:
            key = b""
        if len(key) == KEY_BYTES:  # fromhex skips whitespace: fewer bytes, not a UUID here
            return key
    return uuid.UUID(session_id).bytes


def _found(bucket: bytearray, key: bytes) -> bool:
    """Whether `key` is one of the bucket's 16-byte keys (a match across two keys is not)."""
    at = bucket.find(key)
    while at >= 0:
        if at % KEY_BYTES == 0:
            return True
        at = bucket.find(key, at + 1)
    return False


class IdSet:
    """A set of UUID strings (any form `uuid.UUID` reads; equal UUIDs are one member), 16 bytes
    each. Only what a walk needs: `add`, `in`, `len` and iteration (canonical text)."""

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._buckets: list[bytearray | None] = [None] * _START_BUCKETS
        self._mask = _START_BUCKETS - 1
        self._len = 0
        for session_id in ids:
            self.add(session_id)

    def add(self, session_id: str) -> bool:
        """Add the id; True when it was not there yet."""
        key = _key(session_id)
        index = hash(key) & self._mask
        bucket = self._buckets[index]
        if bucket is None:
            self._buckets[index] = bytearray(key)
        elif _found(bucket, key):
            return False
        else:
            bucket += key
        self._len += 1
        if self._len > _MAX_AVERAGE * len(self._buckets):
            self._grow()
        return True

    def __contains__(self, session_id: object) -> bool:
        if not isinstance(session_id, str):
            return False
        try:
            key = _key(session_id)
        except ValueError:
            return False
        bucket = self._buckets[hash(key) & self._mask]
        return bucket is not None and _found(bucket, key)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        for key in self._keys():
            yield str(uuid.UUID(bytes=key))

    def _keys(self) -> Iterator[bytes]:
        for bucket in self._buckets:
            if bucket is not None:
                for at in range(0, len(bucket), KEY_BYTES):
                    yield bytes(bucket[at : at + KEY_BYTES])

    def _grow(self) -> None:
        old = self._buckets
        self._buckets = [None] * (2 * len(old))
        self._mask = len(self._buckets) - 1
        for bucket in old:
            if bucket is None:
                continue
            for at in range(0, len(bucket), KEY_BYTES):
                key = bytes(bucket[at : at + KEY_BYTES])
                index = hash(key) & self._mask
                target = self._buckets[index]
                if target is None:
                    self._buckets[index] = bytearray(key)
                else:
                    target += key


class SeenValues:
    """Values a list walk has seen in its items' `id` fields, to tell a page that brings
    nothing new: UUID strings in an `IdSet` (16 bytes each), anything else (refused later, per
    item) in an ordinary set."""

    def __init__(self) -> None:
        self._ids = IdSet()
        self._others: set[Any] = set()

    def __len__(self) -> int:
        return len(self._ids) + len(self._others)

    def update(self, values: Iterable[Any]) -> None:
        for value in values:
            if isinstance(value, str):
                try:
                    self._ids.add(value)
                    continue
                except ValueError:
                    pass
            self._others.add(value)
