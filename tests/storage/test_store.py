"""Unit tests of `Store` (etl/storage/store.py): opened for writing, dry-run or read-only; the
revision check before anything is read or written; both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from etl.errors import DatabaseError
from etl.outcomes import RunOutcome
from etl.storage import Store, head_revision
from etl.storage.engines import make_engine
from etl.storage.schema import sync_runs

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def runs(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r) for r in conn.execute(sa.select(sync_runs.c.command, sync_runs.c.outcome))
            ]
    finally:
        engine.dispose()


def test_store_open_refuses_a_database_not_at_head(db_url: str) -> None:
    with pytest.raises(DatabaseError) as refused, Store.open(db_url):
        pass
    message = str(refused.value)
    assert "an empty schema" in message and "run `roomsync db upgrade`" in message


def test_store_open_knows_its_url_dialect_and_revision(migrated_url: str, backend: str) -> None:
    with Store.open(migrated_url, readonly=True) as store:
        assert (store.url, store.dialect) == (migrated_url, backend)
        assert store.revision() == store.require_head() == head_revision()


def test_at_head_false_opens_an_empty_database(db_url: str) -> None:
    with Store.open(db_url, at_head=False) as store:
        assert store.revision() is None


def test_a_store_writes_through_its_methods(migrated_url: str) -> None:
    with Store.open(migrated_url) as store:
        run_id = store.start_run("fetch")
        store.finish_run(run_id, RunOutcome.OK, {"requested": 0})
        assert store.latest_recorded("fetch") is not None
    assert runs(migrated_url) == [("fetch", RunOutcome.OK)]


def test_a_read_only_store_cannot_write(migrated_url: str) -> None:
    with Store.open(migrated_url, readonly=True) as store:
        assert store.read_status(NOW).sessions == 0
        with pytest.raises(DatabaseError):
            store.start_run("fetch")
    assert runs(migrated_url) == []


def test_a_store_wrapping_an_engine_knows_its_url_and_dialect(
    migrated_url: str, backend: str
) -> None:
    engine = make_engine(migrated_url)
    try:
        store = Store(engine)
        assert store.dialect == backend
        assert sa.make_url(store.url) == engine.url  # the password kept, not masked
        assert store.require_head() == head_revision()
    finally:
        engine.dispose()
