"""Unit tests of etl/storage/sql.py: chunks of ids, the dialect's own INSERT, and reads and
writes on connections of their own (both backends)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl.errors import DatabaseError
from etl.storage import chunked
from etl.storage.schema import sync_failures, sync_runs
from etl.storage.sql import CHUNK, insert_for, read_rows, write

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
START_RUN = sa.insert(sync_runs).values(command="fetch", started_at=NOW, outcome="running")


def test_chunked_keeps_order_and_streams() -> None:
    taken: list[int] = []

    def numbers() -> Iterator[int]:
        for n in range(7):
            taken.append(n)
            yield n

    chunks = chunked(numbers(), size=3)
    assert next(chunks) == [0, 1, 2] and taken == [0, 1, 2]  # nothing read ahead
    assert list(chunks) == [[3, 4, 5], [6]]
    assert list(chunked([], size=3)) == []


def test_chunked_by_default_stays_within_the_driver_bound() -> None:
    ids = [str(uuid.UUID(int=n)) for n in range(2 * CHUNK + 1)]
    sizes = [len(chunk) for chunk in chunked(ids)]
    assert sizes == [CHUNK, CHUNK, 1]
    assert [i for chunk in chunked(ids) for i in chunk] == ids


def test_the_dialect_insert_knows_on_conflict_on_both_backends(engine: Engine) -> None:
    """The same upsert through `insert_for` runs on either backend; the second write of a key
    updates the row instead of failing."""
    key = str(uuid.UUID(int=7))
    (run_id,) = write(engine, START_RUN.returning(sync_runs.c.id))
    for error in ("first", "second"):
        statement = insert_for(engine.dialect.name, sync_failures).values(
            session_id=key, run_id=run_id, error=error, failed_at=NOW
        )
        upsert = statement.on_conflict_do_update(
            index_elements=[sync_failures.c.session_id], set_={"error": error}
        )
        write(engine, upsert)
    rows = read_rows(engine, sa.select(sync_failures.c.session_id, sync_failures.c.error))
    assert [tuple(row) for row in rows] == [(key, "second")]


def test_another_dialect_is_refused_by_name() -> None:
    with pytest.raises(NotImplementedError, match="not mysql"):
        insert_for("mysql", sync_runs)


def test_write_returns_the_first_column_of_returned_rows(engine: Engine) -> None:
    (run_id,) = write(engine, START_RUN.returning(sync_runs.c.id))
    assert isinstance(run_id, int)
    assert write(engine, sa.delete(sync_runs).where(sync_runs.c.id == run_id)) == []
    assert read_rows(engine, sa.select(sync_runs.c.id)) == []


def test_a_failed_read_or_write_is_one_database_error(engine: Engine) -> None:
    missing = sa.table("no_such_table", sa.column("x"))
    with pytest.raises(DatabaseError, match="^reading .* failed: "):
        read_rows(engine, sa.select(missing.c.x))
    with pytest.raises(DatabaseError, match="^writing to .* failed: "):
        write(engine, sa.insert(missing).values(x=1))
