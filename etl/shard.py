"""Splitting one backfill across workers: `backfill --shard K/N` keeps shard K of N.

An id belongs to shard `stable_hash(id) % N`, where the hash is the first 8 bytes (big-endian)
of SHA-256 over the UUID's 16 bytes. It depends on nothing but the id: not on Python's salted
`hash()`, the process, the host or the order of the file, so N workers given the same ids (in
any order, duplicated or not) take disjoint shards that together cover every id once.

K is 0-based (0 <= K < N), as Kubernetes numbers the pods of an Indexed Job. `--shard index/N`
takes K from JOB_COMPLETION_INDEX, the variable Kubernetes sets in each pod of an Indexed Job
(N must equal the Job's `completions`). A malformed or out-of-range value is InputError (exit 2).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from .config import ENV_SHARD_INDEX, shard_index
from .errors import InputError

FROM_ENV = "index"  # the literal K of `--shard index/N`
MAX_DIGITS = 9


def stable_hash(session_id: str) -> int:
    """A 64-bit hash of the id's UUID value, the same in every process and on every host."""
    digest = hashlib.sha256(uuid.UUID(session_id).bytes).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True)
class Shard:
    """Shard `index` (0-based) of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise InputError(f"--shard: the number of shards must be at least 1, not {self.count}")
        if not 0 <= self.index < self.count:
            raise InputError(
                f"--shard: shard index {self.index} is out of range for {self.count} shards "
                f"(0 to {self.count - 1}; shards are numbered from 0)"
            )

    def owns(self, session_id: str) -> bool:
        return stable_hash(session_id) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, env: Mapping[str, str] | None = None) -> Shard:
    """`K/N` (K 0-based), or `index/N` to read K from JOB_COMPLETION_INDEX."""
    index_text, sep, count_text = text.strip().partition("/")
    if not sep:
        raise InputError(f"--shard must be K/N or {FROM_ENV}/N (e.g. 0/4), not {text!r}")
    count = _integer(count_text, f"--shard {text!r}: N")
    if index_text.strip() == FROM_ENV:
        from_env = shard_index(env)
        if from_env is None:
            raise InputError(
                f"--shard {text!r} reads the shard from {ENV_SHARD_INDEX}, which is not set"
            )
        index = _integer(from_env, ENV_SHARD_INDEX)
    else:
        index = _integer(index_text, f"--shard {text!r}: K")
    return Shard(index, count)


def _integer(text: str, what: str) -> int:
    value = text.strip()
    if not value.isascii() or not value.isdigit() or len(value) > MAX_DIGITS:
        raise InputError(f"{what} must be a whole number below 10**{MAX_DIGITS}, not {text!r}")
    return int(value)


class ShardIds:
    """The ids of `ids` that fall in `shard`, in their order.

    `len()` counts them with one extra pass over `ids` (done only when asked, e.g. for a
    progress bar), so a streamed id file is still not held in memory.
    """

    def __init__(self, ids: Iterable[str], shard: Shard) -> None:
        self.ids = ids
        self.shard = shard
        self._count: int | None = None

    def __iter__(self) -> Iterator[str]:
        owns = self.shard.owns
        return (session_id for session_id in self.ids if owns(session_id))

    def __len__(self) -> int:
        if self._count is None:
            self._count = sum(1 for _ in self)
        return self._count
