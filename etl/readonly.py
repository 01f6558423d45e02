"""Opening a database only to read it: `status` and `check` never create or change anything.

SQLite: a file that does not exist is an error (never an empty new file), and the file is opened
with `mode=ro`, so no statement can write to it. PostgreSQL: every transaction is read-only
(`default_transaction_read_only`), so a write would be refused by the server.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError

from .config import mask_url
from .db import SQLITE_BUSY_TIMEOUT_S
from .errors import ConfigError, DatabaseError


def read_only_engine(url: str) -> Engine:
    """An engine that cannot write to the database at `url`; see the module's docstring."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("DATABASE_URL is not a valid SQLAlchemy URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            raise DatabaseError(f"{mask_url(url)} is an in-memory database: nothing to read")
        path = Path(database).resolve()
        if not path.is_file():
            raise DatabaseError(
                f"no database at {path}: check DATABASE_URL, or create it with "
                "`roomsync db upgrade`"
            )
        uri = f"file:{quote(str(path))}?mode=ro"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(
                uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False
            )

        return sa.create_engine(f"sqlite:///{path}", creator=connect)
    connect_args = {"options": "-c default_transaction_read_only=on"}
    try:
        if backend == "postgresql":
            return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
        return sa.create_engine(parsed, pool_pre_ping=True)
    except (ImportError, ArgumentError) as exc:
        raise ConfigError(f"cannot use database {mask_url(url)}: {exc}") from None


@contextlib.contextmanager
def open_read_only(url: str) -> Iterator[Engine]:
    """`read_only_engine(url)`, disposed on exit."""
    engine = read_only_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
