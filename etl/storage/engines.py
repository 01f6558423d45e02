"""Engines, all three kinds in one place: the writing engine, the read-only one (`report`,
`status`, `check`, `db current`) and the dry run's (writes only in transactions rolled back).

The URL is parsed here once (`parse_url`, after config's normalisation), and a URL that is not
one is a one-line ConfigError.

Writing: SQLite gets WAL and a busy timeout for concurrent runs, and foreign keys on.

A dry run (`keep_file_as_is`): a SQLite file that does not exist is an error instead of a new
empty file, and its journal mode is left alone.

Read-only: a SQLite file is opened read-only (`mode=ro`), so that these commands work on a file
on read-only media or owned by someone else, and never create a database file that is not there
(a typo in the path would otherwise leave an empty database behind and report nothing).

SQLite in WAL mode (which roomsync sets when it writes) needs the `-shm` file even to read: a
read-only connection can use an existing one, or create it when the directory is writable.
When the directory is not writable and there is no `-shm` file, the file is opened with
`immutable=1`: no process can be writing it then (a writer needs a `-wal` or `-journal` file
beside it, which it could not create either), which is the condition SQLite documents for
`immutable`. See https://www.sqlite.org/wal.html#readonly and https://www.sqlite.org/uri.html.

PostgreSQL read-only: every transaction is read-only (`default_transaction_read_only`), so a
write would be refused by the server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

from ..config import mask_url, normalize_database_url
from ..errors import ConfigError, DatabaseError

SQLITE_BUSY_TIMEOUT_S = 30
_SQLITE_ARGS = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL for `url` (`postgres://` taken as `postgresql://`); a ConfigError in
    one line when it is not one."""
    try:
        return make_url(normalize_database_url(url))
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            "DATABASE_URL is not a valid SQLAlchemy URL (check the host, and that the port is a "
            "number)"
        ) from None


def is_valid_url(url: str) -> bool:
    """Whether `url` parses as a database URL (`roomsync check` lists it as a problem)."""
    try:
        parse_url(url)
    except ConfigError:
        return False
    return True


def make_engine(url: str, *, keep_file_as_is: bool = False) -> Engine:
    """An engine for any SQLAlchemy URL; see the module's docstring (`keep_file_as_is`: a dry
    run)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        if keep_file_as_is:
            _require_sqlite_file(parsed.database)
        engine = sa.create_engine(parsed, connect_args=dict(_SQLITE_ARGS))
        sa.event.listen(engine, "connect", _foreign_keys if keep_file_as_is else _sqlite_pragmas)
        return engine
    return _server_engine(parsed, url)


def readonly_engine(url: str) -> Engine:
    """An engine that cannot write to the database at `url`; see the module's docstring."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return _server_engine(parsed, url, {"options": "-c default_transaction_read_only=on"})
    database = parsed.database
    if backend != "sqlite" or not database or database == ":memory:":
        return make_engine(url)
    if parsed.query.get("uri") or database.startswith("file:"):
        return make_engine(url)  # a URI the user wrote: their mode, their choice
    return sa.create_engine(sqlite_readonly_url(database), connect_args=dict(_SQLITE_ARGS))


def make_migration_engine(url: str) -> Engine:
    """An engine for Alembic. On SQLite, DDL joins the transaction: Python's sqlite3 module
    commits before each DDL statement on its own, so a migration killed halfway would leave a
    half-changed schema. With the driver's own transaction handling off and an explicit BEGIN,
    each migration (with its alembic_version update) commits whole or not at all."""
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _driver_autocommit)
        sa.event.listen(engine, "begin", _explicit_begin)
    return engine


def _server_engine(parsed: URL, url: str, connect_args: dict[str, Any] | None = None) -> Engine:
    """A pooled engine for a database server; a driver that is not installed is a ConfigError."""
    try:
        return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args or {})
    except (ImportError, ArgumentError) as exc:
        raise ConfigError(f"cannot use database {mask_url(url)}: {exc}") from None


def _require_sqlite_file(database: str | None) -> None:
    real_file = database and database != ":memory:" and not database.startswith("file:")
    if real_file and not Path(database or "").is_file():
        raise DatabaseError(
            f"no database at {database}: run `roomsync db upgrade` to create one, or give "
            "--database-url / DATABASE_URL"
        )


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


def _driver_autocommit(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _explicit_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def _foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
