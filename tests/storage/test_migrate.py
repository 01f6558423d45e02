"""Unit tests of etl/storage/migrate.py: where the migrations are, the head revision, the one
revision check, and Alembic failures as one DatabaseError line (both backends)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from etl.errors import DatabaseError
from etl.storage.migrate import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    migrations_dir,
    require_head,
    upgrade,
)

ASSIGNMENT = re.compile(r'^(down_revision|revision)\b[^=]*=\s*"?([\w]+)"?', re.MULTILINE)


def revisions_on_disk() -> tuple[set[str], set[str]]:
    """(every revision, every revision some migration builds on), read from the files."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (migrations_dir() / "versions").glob("*.py"):
        for name, value in ASSIGNMENT.findall(path.read_text()):
            (revisions if name == "revision" else parents).add(value)
    return revisions, parents


def test_the_migrations_are_found_with_their_environment() -> None:
    assert (migrations_dir() / "env.py").is_file()
    config = alembic_config("sqlite:///x.db")
    assert config.get_main_option("script_location") == str(migrations_dir())
    assert config.attributes["database_url"] == "sqlite:///x.db"


def test_the_head_is_the_one_revision_no_migration_builds_on() -> None:
    revisions, parents = revisions_on_disk()
    assert revisions - parents == {head_revision()}


def test_require_head_accepts_only_the_head() -> None:
    head = head_revision()
    assert require_head(head, "sqlite:///x.db") == head
    revisions, _ = revisions_on_disk()
    older = sorted(revisions - {head})[0]
    url = "postgresql://roomsync:s3cret-pw@db.internal/app"
    with pytest.raises(DatabaseError) as refused:
        require_head(older, url)
    assert str(refused.value) == (
        f"database postgresql://roomsync:***@db.internal/app is at {older}, not at {head}: "
        "run `roomsync db upgrade`"
    )
    with pytest.raises(DatabaseError, match="is at an empty schema, not at"):
        require_head(None, url)


def test_current_revision_follows_upgrade_and_downgrade(db_url: str) -> None:
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    downgrade(db_url, "base")
    assert current_revision(db_url) is None


def test_current_revision_of_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(DatabaseError):
        current_revision(f"sqlite:///{path}")
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_revision_is_one_database_error_with_the_url_masked(
    migrated_url: str,
) -> None:
    with pytest.raises(DatabaseError) as failed:
        downgrade(migrated_url, "no_such_revision")
    message = str(failed.value)
    assert message.startswith("downgrading ") and "no_such_revision" in message
    assert "\n" not in message
    assert current_revision(migrated_url) == head_revision()  # nothing moved
