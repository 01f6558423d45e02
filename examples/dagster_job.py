"""Dagster: a scheduled `roomsync sync` job and a configurable backfill job.

Install roomsync in the code location's environment (`pip install roomsync-*.whl`) and give it
the command line's environment variables (SIGNALWIRE_SPACE, SIGNALWIRE_PROJECT_ID,
SIGNALWIRE_API_TOKEN, DATABASE_URL). For a backfill across N runs, launch the backfill job N
times with `shard: "0/N"` ... `"N-1/N"` in its run config. examples/check.sh runs both jobs
for real against the local stand-in API (`dagster job execute`), in a virtualenv of its own.

No `from __future__ import annotations` here: Dagster reads the annotations at definition time
and rejects `context: OpExecutionContext` once it is a string.
"""

from typing import Any

from dagster import Config, Definitions, OpExecutionContext, ScheduleDefinition, job, op

from etl import api


@op
def roomsync_upgrade() -> str:
    return api.upgrade()  # no-op when the schema is already at head


@op
def roomsync_sync(context: OpExecutionContext, revision: str) -> dict[str, Any]:
    # Failed ids raise RunFailed (the run fails); the next sync retries them anyway.
    result = api.sync(raise_on_failure=True)
    context.log.info(f"roomsync sync at {revision}: {result}")
    return result


@job
def roomsync_sync_job() -> None:
    roomsync_sync(roomsync_upgrade())


class BackfillConfig(Config):
    ids_file: str
    shard: str = "0/1"  # "K/N": this run's share of the file


@op
def roomsync_backfill(context: OpExecutionContext, config: BackfillConfig) -> dict[str, Any]:
    summary = api.backfill_file(config.ids_file, shard=config.shard, raise_on_failure=True)
    context.log.info(f"roomsync backfill {config.shard}: {summary}")
    return summary


@job
def roomsync_backfill_job() -> None:
    roomsync_backfill()


defs = Definitions(
    jobs=[roomsync_sync_job, roomsync_backfill_job],
    schedules=[ScheduleDefinition(job=roomsync_sync_job, cron_schedule="*/10 * * * *")],
)
