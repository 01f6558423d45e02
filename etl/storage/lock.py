"""The lock that keeps two syncs from running at once.

On PostgreSQL a session-level advisory lock, held on its own connection: it works across hosts
and is released by the server when the process dies, even by SIGKILL. On SQLite exclusive
`flock`s, which the kernel releases the same way, on two files in the database's directory
(symlinks resolved): `.roomsync-<device>-<inode>.sync-lock`, named after the database file's
identity, so that every name of one file -- a symlink, a hard link, a bind mount of its
directory -- finds the same lock; and `<database>.sync-lock`, the lock of earlier versions, so
that a sync of an older version running during an upgrade still keeps this one out. (A hard
link in another directory is not covered: only a lock on the database file itself would be, and
a descriptor of the database closed by this process would drop SQLite's own POSIX locks.)
A lock file that cannot be opened (a read-only directory, a directory in its place) is a
DatabaseError, one line and exit 3.

The advisory lock lives only as long as its connection: when that connection dies (a server
restart, `pg_terminate_backend`, a network cut), another sync can take the lock. `held_lock`
therefore gives the run a check to call before every write, which stops the run with LockLost
once the lock is gone, before it writes anything the other sync does not expect.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..errors import DatabaseError, LockLost
from .dberrors import describe_error, map_errors

log = logging.getLogger(__name__)

# Any fixed 64-bit number: the advisory lock's identity, shared by every roomsync process.
ADVISORY_KEY = 0x726F6F6D73796E63  # "roomsync"

LockCheck = Callable[[], None]


@contextlib.contextmanager
def run_lock(engine: Engine) -> Iterator[bool]:
    """Try to take the sync lock without waiting; yield whether it was taken."""
    with held_lock(engine) as check:
        yield check is not None


@contextlib.contextmanager
def held_lock(engine: Engine) -> Iterator[LockCheck | None]:
    """Try to take the sync lock without waiting; yield None when another holds it, else a
    check that raises LockLost once the lock is gone (call it before each write)."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine) as (taken, conn):
            yield _AdvisoryLockCheck(conn, engine) if taken else None
    else:
        with _file_lock(engine.url.database) as taken:
            yield _file_lock_held if taken else None


@contextlib.contextmanager
def no_lock() -> Iterator[LockCheck]:
    """For a run that writes nothing (a dry run): no lock taken, and nothing to check."""
    yield _file_lock_held


def _file_lock_held() -> None:
    """A flock lives as long as our open file: it cannot be lost while the run goes on."""


class _AdvisoryLockCheck:
    """Raises LockLost unless the lock's connection still holds the advisory lock; once lost,
    it stays lost (the run's last flush asks again, and must hear the first reason)."""

    _HELD = sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND pid = pg_backend_pid() AND classid::bigint = :hi AND objid::bigint = :lo"
        " AND objsubid = 1"
    )

    def __init__(self, conn: sa.Connection, engine: Engine) -> None:
        self.conn = conn
        self.engine = engine
        self.lost: str | None = None

    def __call__(self) -> None:
        if self.lost is None:
            self.lost = self._why_lost()
        if self.lost is not None:
            raise LockLost(
                f"the sync lock's database connection was lost ({self.lost}); another sync "
                "may run now, so this one stops here: what it wrote is kept, the next sync "
                "finishes the work"
            )

    def _why_lost(self) -> str | None:
        key = {"hi": ADVISORY_KEY >> 32, "lo": ADVISORY_KEY & 0xFFFFFFFF}
        try:
            held = bool(self.conn.execute(self._HELD, key).scalar())
            self.conn.commit()
        except SQLAlchemyError as exc:
            reason = describe_error(exc, self.engine.url)
        else:
            if held:
                return None
            reason = "the lock is no longer held"
        with contextlib.suppress(SQLAlchemyError):
            self.conn.invalidate()  # nothing to release any more (see _advisory_lock)
        return reason


@contextlib.contextmanager
def _advisory_lock(engine: Engine) -> Iterator[tuple[bool, sa.Connection]]:
    with map_errors(engine.url, "locking"):
        conn = engine.connect()
        taken = bool(conn.execute(sa.select(sa.func.pg_try_advisory_lock(ADVISORY_KEY))).scalar())
        conn.commit()
    try:
        yield taken, conn
    finally:
        try:
            if taken and not conn.invalidated:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(ADVISORY_KEY)))
                conn.commit()
        except SQLAlchemyError as exc:
            # The lock's connection is gone, and with it the lock: nothing is left to release.
            log.warning("releasing the sync lock: %s", describe_error(exc, engine.url))
        finally:
            conn.close()


@contextlib.contextmanager
def _file_lock(database: str | None) -> Iterator[bool]:
    if not database or database == ":memory:":
        yield True  # a private in-memory database cannot be shared with another process
        return
    # realpath: a symlink to the database (or to its directory) is the same database, and must
    # find the same lock.
    real = os.path.realpath(database)
    with contextlib.ExitStack() as held:
        for path in (f"{real}.sync-lock", _identity_lock_path(real)):
            if not held.enter_context(_flock(path)):
                yield False
                return
        yield True


def _identity_lock_path(real: str) -> str:
    try:
        identity = os.stat(real)
    except OSError as exc:
        raise DatabaseError(f"cannot take the sync lock: {real}: {exc.strerror or exc}") from None
    name = f".roomsync-{identity.st_dev:x}-{identity.st_ino:x}.sync-lock"
    return os.path.join(os.path.dirname(real), name)


@contextlib.contextmanager
def _flock(path: str) -> Iterator[bool]:
    """An exclusive flock on `path` (created if missing), without waiting: yields whether taken."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise DatabaseError(
            f"cannot open the sync lock file {path}: {exc.strerror or exc} (it is kept beside "
            "the database: its directory must be writable, and the name free for a file)"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
