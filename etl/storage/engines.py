"""Engines, all three kinds in one place: the writing engine, the read-only one (`report`,
`status`, `check`, `db current`) and the dry run's (writes only in transactions rolled back).

The URL is parsed here once (`parse_url`, after config's normalisation), and a URL that is not
one is a one-line ConfigError.

Writing: SQLite gets WAL and a busy timeout for concurrent runs, and foreign keys on. The file's
identity (device, inode) is recorded when it is first opened and checked before every new
connection and every transaction: when the path names another file by then (a backup restored, a
deploy that swapped the file), DatabaseReplaced stops the run before anything is written through
state that belongs to the old file -- pooled connections still on the old inode, and its
write-ahead log, whose `-wal`/`-shm` names the new file would otherwise pair with.

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
from ..errors import ConfigError, DatabaseError, DatabaseReplaced

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


def shareable_url(url: str) -> str:
    """`url` as another shell or directory can use it: a SQLite file named relative to the
    working directory made absolute; a password masked (never shown; the user puts it back)."""
    parsed = parse_url(url)
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and _relative_file(database):
        parsed = parsed.set(database=os.path.abspath(str(database)))
    if parsed.password is not None:
        return mask_url(parsed)
    return parsed.render_as_string(hide_password=False)


def _relative_file(database: str | None) -> bool:
    """A SQLite database that is a file named relative to the working directory."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return False
    return not os.path.isabs(database)


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
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            identity = _FileIdentity(database)
            sa.event.listen(engine, "connect", identity.on_connect, insert=True)  # first
            sa.event.listen(engine, "begin", identity.on_begin)
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


class _FileIdentity:
    """The (device, inode) of the SQLite file an engine opened; see the module's docstring."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.identity = self._current()  # None until the file exists (`db upgrade` makes it)

    def _current(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def check(self) -> None:
        now = self._current()
        if self.identity is None:
            self.identity = now
            return
        if now != self.identity:
            what = (
                "is gone since this run opened it"
                if now is None
                else "now names another file than the one this run opened"
            )
            raise DatabaseReplaced(
                f"the database file {self.path} {what} (a backup restored, a deploy that "
                "swapped it?): stopped before writing to it; what this run stored went to the "
                "file it opened; re-run to work on the one there now"
            )

    def on_connect(self, _dbapi_connection: Any, _record: Any) -> None:
        self.check()

    def on_begin(self, conn: sa.Connection) -> None:
        try:
            self.check()
        except DatabaseReplaced:
            # `conn` passed on_connect: it is on the old file. SQLite will not checkpoint a
            # moved database on close, so its log would stay under the names the new file
            # pairs with, and the next opener would read the old file's pages as its own.
            self._retire_log(conn)
            raise

    def _retire_log(self, conn: sa.Connection) -> None:
        """Checkpoint the old file's write-ahead log into the old file (through `conn`, whose
        descriptor is the old inode), then unlink `-wal` and `-shm` when they are the very
        files this process has open -- never a log that came with the new file."""
        try:
            conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                "PRAGMA wal_checkpoint(TRUNCATE)"
            )
        except Exception:  # noqa: BLE001 -- best effort; the run stops either way
            return
        mine = _open_file_identities()
        for suffix in ("-wal", "-shm"):
            path = self.path + suffix
            try:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) in mine:
                    os.unlink(path)
            except OSError:
                continue


def _open_file_identities() -> set[tuple[int, int]]:
    """(device, inode) of every file this process has open (Linux /proc; empty elsewhere)."""
    found: set[tuple[int, int]] = set()
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return found
    for name in names:
        try:
            st = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return found


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
