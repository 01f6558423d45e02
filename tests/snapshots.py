"""Every table's contents, to show that a command wrote nothing."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from etl.storage.engines import make_engine

TABLES = ("room_sessions", "sync_runs", "sync_failures", "sync_relist", "alembic_version")


def table_contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """{table: every row, sorted by its text}, for every roomsync table."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: sorted(
                    (tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM {name}"))),
                    key=repr,
                )
                for name in TABLES
            }
    finally:
        engine.dispose()
