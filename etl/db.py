"""Engines, dialects and migrations: connecting to the database, the dialect-specific insert
that upserts build on, and moving the schema with Alembic.

Connection errors become DatabaseError with the URL's password masked; the message never
carries the password even when the driver echoes parts of the URL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from .config import mask_url, normalize_database_url, url_secrets
from .errors import ConfigError, DatabaseError

ROOT = Path(__file__).resolve().parent.parent
SQLITE_BUSY_TIMEOUT_S = 30


def make_engine(url: str, *, keep_file_as_is: bool = False) -> Engine:
    """An engine for any SQLAlchemy URL; SQLite gets WAL and a busy timeout for concurrent runs.

    `keep_file_as_is` (a dry run): a SQLite file that does not exist is an error instead of a
    new empty file, and its journal mode is left alone.
    """
    try:
        parsed = make_url(normalize_database_url(url))
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            "DATABASE_URL is not a valid SQLAlchemy URL (check the host, and that the port is a "
            "number)"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if keep_file_as_is:
            _require_sqlite_file(parsed.database)
        engine = sa.create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        )
        sa.event.listen(engine, "connect", _foreign_keys if keep_file_as_is else _sqlite_pragmas)
        return engine
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except (ImportError, ArgumentError) as exc:
        raise ConfigError(f"cannot use database {mask_url(url)}: {exc}") from None


def _require_sqlite_file(database: str | None) -> None:
    real_file = database and database != ":memory:" and not database.startswith("file:")
    if real_file and not Path(database or "").is_file():
        raise DatabaseError(
            f"no database at {database}: run `roomsync db upgrade` to create one, or give "
            "--database-url / DATABASE_URL"
        )


@contextlib.contextmanager
def open_engine(url: str, readonly: bool = False, dry_run: bool = False) -> Iterator[Engine]:
    """An engine for a database whose schema is at the newest migration, disposed on exit;
    `readonly` opens a SQLite file read-only and never creates one (etl.readonly); `dry_run`
    writes only in transactions that are rolled back, so it too never creates or converts a
    SQLite file."""
    from .readonly import readonly_engine

    engine = readonly_engine(url) if readonly else make_engine(url, keep_file_as_is=dry_run)
    try:
        require_head(engine, url)
        yield engine
    finally:
        engine.dispose()


DialectInsert = postgresql.Insert | sqlite.Insert


def insert_for(dialect: str, table: sa.Table) -> DialectInsert:
    """The dialect's own INSERT for `table`, the one with ON CONFLICT clauses."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"roomsync supports SQLite and PostgreSQL, not {dialect}")


def read_rows(engine: Engine, query: Any) -> list[Any]:
    """Every row of a read-only `query`, on a connection of its own; a DatabaseError if the
    database cannot answer."""
    try:
        with engine.connect() as conn:
            return list(conn.execute(query).all())
    except SQLAlchemyError as exc:
        raise database_error(exc, engine.url, "reading") from None


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


def describe_error(exc: BaseException, url: Any) -> str:
    """One line about a database failure, with every secret of `url` removed."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    text = lines[0] if lines else type(orig).__name__
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text


def database_error(exc: BaseException, url: Any, doing: str) -> DatabaseError:
    """A DatabaseError for `exc`; `url` is the real URL (text or an engine's URL object), so that
    its secrets can be found and removed from the driver's message."""
    return DatabaseError(f"{doing} {mask_url(url)} failed: {describe_error(exc, url)}")


def migrations_dir() -> Path:
    """The directory holding the Alembic migrations, wherever roomsync is installed.

    Installed (wheel, `pip install .`, pipx, editable) they are the package `etl.migrations`,
    found through importlib.resources; the wheel maps the checkout's top-level migrations/ to
    it (pyproject.toml). A source tree imported without installing has them in ROOT/migrations.
    Alembic reads them from the file system, so a location that is not a directory (a zip) is a
    configuration error, not a traceback.
    """
    from importlib import resources

    try:
        location: Any = resources.files(f"{__package__}.migrations")
    except ModuleNotFoundError:
        location = ROOT / "migrations"
    if not isinstance(location, Path) or not (location / "env.py").is_file():
        raise ConfigError(f"roomsync's migrations are not on the file system at {location}")
    return location


def alembic_config(url: str, connection: sa.Connection | None = None) -> Any:
    """An Alembic Config for this project's migrations, pointed at `url`.

    Built in code rather than from alembic.ini, which exists only in a checkout (it is what
    `alembic upgrade head` run from the checkout's root reads).
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    _run_alembic(lambda: command.upgrade(alembic_config(url), revision), url, "upgrading")


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    _run_alembic(lambda: command.downgrade(alembic_config(url), revision), url, "downgrading")


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    from .readonly import readonly_engine  # read-only: works on read-only media, creates nothing

    engine = readonly_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise database_error(exc, url, "reading") from None
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest migration's revision. Migrations that cannot be read (an install without
    them) are a ConfigError, never a traceback."""
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    try:
        head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    except CommandError as exc:
        raise ConfigError(f"roomsync's migrations cannot be read: {exc}") from None
    if head is None:
        raise ConfigError(f"roomsync's migrations at {migrations_dir()} hold no revision")
    return head


def require_head(engine: Engine, url: str) -> None:
    """Refuse to write into a database whose schema is not at the newest migration."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise database_error(exc, url, "connecting to") from None
    head = head_revision()
    if current != head:
        at = current or "an empty schema"
        raise DatabaseError(
            f"database {mask_url(url)} is at {at}, not at {head}: run `roomsync db upgrade`"
        )


def _run_alembic(action: Callable[[], object], url: str, doing: str) -> None:
    from alembic.util.exc import CommandError

    try:
        action()
    except CommandError as exc:
        raise DatabaseError(f"{doing} {mask_url(url)} failed: {exc}") from None
    except SQLAlchemyError as exc:
        raise database_error(exc, url, doing) from None
