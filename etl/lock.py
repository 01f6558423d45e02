"""The lock that keeps two syncs from running at once.

On PostgreSQL a session-level advisory lock, held on its own connection: it works across hosts
and is released by the server when the process dies, even by SIGKILL. On SQLite an exclusive
`flock` on a file beside the database, which the kernel releases the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .db import database_error, describe_error

log = logging.getLogger(__name__)

# Any fixed 64-bit number: the advisory lock's identity, shared by every roomsync process.
ADVISORY_KEY = 0x726F6F6D73796E63  # "roomsync"


@contextlib.contextmanager
def run_lock(engine: Engine) -> Iterator[bool]:
    """Try to take the sync lock without waiting; yield whether it was taken."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine) as taken:
            yield taken
    else:
        with _file_lock(engine.url.database) as taken:
            yield taken


@contextlib.contextmanager
def _advisory_lock(engine: Engine) -> Iterator[bool]:
    try:
        conn = engine.connect()
        taken = bool(conn.execute(sa.select(sa.func.pg_try_advisory_lock(ADVISORY_KEY))).scalar())
        conn.commit()
    except SQLAlchemyError as exc:
        raise database_error(exc, engine.url, "locking") from None
    try:
        yield taken
    finally:
        try:
            if taken:
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
    path = f"{os.path.abspath(database)}.sync-lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
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
