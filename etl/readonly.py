"""Engines for commands that only read (`report`, `status`, `check`, `db current`): they never
create or change anything.

A SQLite file is opened read-only (`mode=ro`), so that these commands work on a file on
read-only media or owned by someone else, and never create a database file that is not there
(a typo in the path would otherwise leave an empty database behind and report nothing).

SQLite in WAL mode (which roomsync sets when it writes) needs the `-shm` file even to read: a
read-only connection can use an existing one, or create it when the directory is writable.
When the directory is not writable and there is no `-shm` file, the file is opened with
`immutable=1`: no process can be writing it then (a writer needs a `-wal` or `-journal` file
beside it, which it could not create either), which is the condition SQLite documents for
`immutable`. See https://www.sqlite.org/wal.html#readonly and https://www.sqlite.org/uri.html.

PostgreSQL: every transaction is read-only (`default_transaction_read_only`), so a write would
be refused by the server.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

from .config import mask_url
from .db import SQLITE_BUSY_TIMEOUT_S, make_engine
from .errors import ConfigError, DatabaseError


def readonly_engine(url: str) -> Engine:
    """An engine that cannot write to the database at `url`; see the module's docstring."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return make_engine(url)  # which raises the usual one-line ConfigError
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        read_only = {"options": "-c default_transaction_read_only=on"}
        try:
            return sa.create_engine(parsed, pool_pre_ping=True, connect_args=read_only)
        except (ImportError, ArgumentError) as exc:
            raise ConfigError(f"cannot use database {mask_url(url)}: {exc}") from None
    database = parsed.database
    if backend != "sqlite" or not database or database == ":memory:":
        return make_engine(url)
    if parsed.query.get("uri") or database.startswith("file:"):
        return make_engine(url)  # a URI the user wrote: their mode, their choice
    return sa.create_engine(
        sqlite_readonly_url(database),
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
    )


@contextlib.contextmanager
def open_read_only(url: str) -> Iterator[Engine]:
    """`readonly_engine(url)`, disposed on exit."""
    engine = readonly_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def sqlite_readonly_url(path: str) -> URL:
    """The SQLAlchemy URL that opens the SQLite file at `path` read-only (see the module doc).

    Raises DatabaseError when there is no such file.
    """
    real = os.path.realpath(path)
    if not os.path.isfile(real):
        raise DatabaseError(
            f"no database at {path}: run `roomsync db upgrade` to create one, or give "
            "--database-url / DATABASE_URL"
        )
    query = {"mode": "ro", "uri": "true"}
    directory = os.path.dirname(real)
    if not os.access(directory, os.W_OK) and not os.path.exists(f"{real}-shm"):
        if os.path.exists(f"{real}-wal") and os.path.getsize(f"{real}-wal") > 0:
            # immutable would ignore the log, and with it the last commits
            raise DatabaseError(
                f"{path} has a write-ahead log but no -shm file, in a directory roomsync cannot "
                "write: copy the three files to writable storage to read them"
            )
        query["immutable"] = "1"
    return URL.create("sqlite", database=f"file:{quote(real)}", query=query)
