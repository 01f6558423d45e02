"""`roomsync demo`, the README's first command: the whole job end to end on SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from etl.cli import main
from etl.storage.engines import make_engine


def test_demo_backfills_syncs_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    args = ["demo", "--sessions", "60", "--database-url", url, "--json"]
    first = CliRunner().invoke(main, args, env={"DATABASE_URL": "sqlite:////nonexistent/x.db"})
    assert first.exit_code == 0, first.output
    result = json.loads(first.stdout)
    bill = result["backfill"].pop("bill")  # the members and recordings of the backfilled ids
    assert bill["detail_failed"] == 0 and bill["members"]["inserted"] > 0
    assert result["backfill"] | {"elapsed_s": 0} == {
        "requested": 62,
        "inserted": 60,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "not_found": 2,
        "failed": 0,
        "elapsed_s": 0,
        "failed_ids": [],
        "retries": 3,  # the scripted 503, 429 and reset
        "throttled": 1,
    }
    assert result["sync"]["listed"] == 60 and result["sync"]["failed"] == 0
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            costs = conn.execute(
                sa.text("SELECT count(cost_in_dollars) FROM room_sessions")
            ).scalar_one()
    finally:
        engine.dispose()
    assert costs > 0  # the sync brought in what only the list carries
    again = json.loads(CliRunner().invoke(main, args).stdout)
    assert again["backfill"]["unchanged"] == 60 and again["sync"]["inserted"] == 0
