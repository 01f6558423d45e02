"""The sync lock: exclusive while held, free once released, harmless when its connection dies."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl.storage.lock import run_lock


def test_the_lock_is_exclusive_and_released(engine: Engine) -> None:
    with run_lock(engine) as first:
        assert first
        with run_lock(engine) as second:
            assert not second
    with run_lock(engine) as again:
        assert again


@pytest.mark.parametrize("backend", ["postgresql"])  # advisory locks live on connections
def test_losing_the_lock_connection_does_not_break_the_release(engine: Engine) -> None:
    with run_lock(engine) as taken:
        assert taken
        with engine.connect() as other:
            other.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
                )
            )
    with run_lock(engine) as again:  # the server released it with the connection
        assert again
