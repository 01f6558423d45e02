"""Airflow: `roomsync sync` every 10 minutes, and a backfill split over parallel tasks.

Install roomsync in the workers' environment (`pip install roomsync-*.whl`) and give them the
same environment variables as the command line (SIGNALWIRE_SPACE, SIGNALWIRE_PROJECT_ID,
SIGNALWIRE_API_TOKEN, DATABASE_URL), e.g. from a secrets backend. Written for Airflow 3
(`airflow.sdk`); on Airflow 2 import `dag` and `task` from `airflow.decorators` instead.
examples/check.sh runs both DAGs for real against the local stand-in API (`airflow dags test`),
in a virtualenv of its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from etl import api

SHARDS = 4


@dag(
    schedule=timedelta(minutes=10),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one sync at a time (roomsync's own lock would skip a second one)
)
def roomsync_sync() -> None:
    @task
    def upgrade() -> str:
        return api.upgrade()  # no-op when the schema is already at head

    @task(retries=1, retry_delay=timedelta(minutes=2))
    def sync() -> dict[str, Any]:
        # Failed ids raise RunFailed (the task fails); the next sync retries them anyway.
        # The summary dict is returned as the task's XCom.
        return api.sync(raise_on_failure=True)

    upgrade() >> sync()


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"ids_file": Param("/data/roomsync/ids.txt", type="string")},
)
def roomsync_backfill() -> None:
    """Trigger by hand (the ids file in the run's conf, e.g. `{"ids_file": "/data/ids.txt"}`):
    SHARDS mapped tasks, each fetching its own shard of the same file."""

    @task(retries=2)
    def backfill(ids_file: str, shard: str) -> dict[str, Any]:
        # retry_failed: a retried task also picks up the ids its shard failed before.
        return api.backfill_file(ids_file, shard=shard, retry_failed=True, raise_on_failure=True)

    backfill.partial(ids_file="{{ params.ids_file }}").expand(
        shard=[f"{k}/{SHARDS}" for k in range(SHARDS)]
    )


roomsync_sync()
roomsync_backfill()
