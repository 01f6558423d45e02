"""`roomsync --version`: the package version and the schema revision this roomsync expects.

The expected revision is the newest Alembic migration (what `roomsync db upgrade` moves to). It is
read from the migration files' `revision` / `down_revision` lines rather than through Alembic,
so that `--version` stays as fast as the rest of the command line's start (importing Alembic
and SQLAlchemy would take several times longer). tests/test_cli.py checks that both agree.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from . import __version__

_ASSIGNMENT = re.compile(
    r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(?:\"([^\"]*)\"|'([^']*)'|None)", re.M
)


def _versions_dir() -> Any:
    from importlib import resources

    try:
        return resources.files(f"{__package__}.migrations") / "versions"
    except ModuleNotFoundError:  # a source tree imported without installing
        return Path(__file__).resolve().parent.parent / "migrations" / "versions"


def expected_revision() -> str | None:
    """The head of the migrations: the one revision no other one names as its down_revision.
    None when the files cannot be read or do not make one head."""
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        files = [entry for entry in _versions_dir().iterdir() if entry.name.endswith(".py")]
        for entry in files:
            found = {
                m.group(1): m.group(2) or m.group(3)
                for m in _ASSIGNMENT.finditer(entry.read_text(encoding="utf-8"))
            }
            if found.get("revision"):
                revisions.add(found["revision"])
            if found.get("down_revision"):
                parents.add(found["down_revision"])
    except OSError:
        return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def version_text() -> str:
    return f"roomsync, version {__version__} (schema revision {expected_revision() or 'unknown'})"
