"""Moving the schema with Alembic, and the one check that a database is at the newest migration.

Alembic and SQLAlchemy failures become DatabaseError with the URL's password masked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..config import mask_url
from ..errors import ConfigError, DatabaseError
from .dberrors import map_errors
from .engines import readonly_engine

ROOT = Path(__file__).resolve().parent.parent.parent
MIGRATIONS_PACKAGE = "etl.migrations"


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
        location: Any = resources.files(MIGRATIONS_PACKAGE)
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


def revision_of(conn: sa.Connection) -> str | None:
    """The revision the database behind `conn` is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None for an empty database; read through a
    read-only engine, so it works on read-only media and creates nothing."""
    engine = readonly_engine(url)
    try:
        with map_errors(url, "reading"), engine.connect() as conn:
            return revision_of(conn)
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


def require_head(current: str | None, url: Any) -> str:
    """The head revision, when `current` is it; else the DatabaseError that refuses to use a
    database whose schema is not at the newest migration."""
    head = head_revision()
    if current != head:
        at = current or "an empty schema"
        raise DatabaseError(
            f"database {mask_url(url)} is at {at}, not at {head}: run `roomsync db upgrade`"
        )
    return head


def _run_alembic(action: Callable[[], object], url: str, doing: str) -> None:
    from alembic.util.exc import CommandError

    try:
        with map_errors(url, doing):
            action()
    except CommandError as exc:
        raise DatabaseError(f"{doing} {mask_url(url)} failed: {exc}") from None
