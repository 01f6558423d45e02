"""etl/storage/bulk.py on both backends: ids bound as one parameter (`ids_in`/`ids_param`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl.storage import bulk
from etl.storage.schema import sync_relist

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def queue(engine: Engine, ids: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(sync_relist), [{"session_id": i, "created_at": NOW} for i in ids])


def matching(engine: Engine, ids: list[str]) -> list[str]:
    dialect = engine.dialect.name
    sql = f"SELECT session_id FROM sync_relist WHERE {bulk.ids_in(dialect, 'session_id')}"
    with engine.connect() as conn:
        found = conn.exec_driver_sql(sql, (bulk.ids_param(dialect, ids),)).scalars()
        return sorted(str(i) for i in found)


@pytest.mark.parametrize("count", [0, 1, 2, 1200])
def test_ids_bound_as_one_parameter_match_exactly_those_ids(engine: Engine, count: int) -> None:
    stored = [str(uuid.UUID(int=n + 1)) for n in range(1500)]
    queue(engine, stored)
    asked = stored[:count:2] + [str(uuid.UUID(int=10**9 + n)) for n in range(count // 2)]
    assert matching(engine, asked) == sorted(stored[:count:2])


@pytest.mark.parametrize("joint", ['","', '\\",\\"', ",", "}','{"])
def test_an_id_that_is_no_uuid_never_matches_another_row(engine: Engine, joint: str) -> None:
    """Ids go as one array: an id holding quotes, backslashes or commas must not split into
    two ids, each another session's."""
    first, second = str(uuid.UUID(int=1)), str(uuid.UUID(int=2))
    queue(engine, [first, second])
    crafted = first + joint + second
    if engine.dialect.name == "postgresql":
        with pytest.raises(sa.exc.DataError):  # not a uuid: refused
            matching(engine, [crafted])
    else:
        assert matching(engine, [crafted]) == []
