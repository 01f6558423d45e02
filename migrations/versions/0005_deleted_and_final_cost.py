"""Deleted sessions, final costs, skipped ids: room_sessions.deleted_at and .cost_final,
sync_runs.skipped; the report views count only final costs and no deleted session as live.

- `deleted_at`: when a stored session first answered 404 by id. The row stays for history; it
  is no longer refreshed and no view counts it as completed, in progress or other (each view
  counts it in `deleted`; `room_sessions_by_status` groups it under the status `deleted`).
  Cleared when the session is seen again.
- `cost_final`: the stored `cost_in_dollars` came from a list item of a completed session at
  least as new as the row. Only those costs are summed (`cost_usd`, `sessions_with_cost`);
  `cost_pending` counts completed, not deleted sessions still waiting for theirs. Existing rows
  are final when completed with a cost and not waiting in the relist queue (0004), which held
  exactly the completed rows whose list entry had not been read since they completed.
- `sync_runs.skipped`: ids a backfill left alone because they were stored exactly.

The views of 0003 read room_sessions, so they are dropped first and created again afterwards;
a downgrade restores 0003's own views.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _views_0003() -> ModuleType:
    """Migration 0003 (its file name is not an importable module name)."""
    path = Path(__file__).with_name("0003_report_views.py")
    spec = importlib.util.spec_from_file_location("roomsync_migration_0003", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_LIVE = "deleted_at IS NULL"
_STATUS_COUNTS = f"""
    sum(CASE WHEN {_LIVE} AND status = 'completed' THEN 1 ELSE 0 END) AS completed,
    sum(CASE WHEN {_LIVE} AND status = 'in-progress' THEN 1 ELSE 0 END) AS in_progress,
    sum(CASE WHEN {_LIVE} AND (status IS NULL OR status NOT IN ('completed', 'in-progress'))
        THEN 1 ELSE 0 END) AS other_status,
    sum(CASE WHEN deleted_at IS NOT NULL THEN 1 ELSE 0 END) AS deleted,"""

_FINAL_COST = "CASE WHEN cost_final THEN cost_in_dollars END"
_COST = {
    "sqlite": f"round(sum({_FINAL_COST}), 6)",
    "postgresql": f"round(sum({_FINAL_COST})::numeric, 6)::double precision",
}


def _measures(v3: ModuleType, dialect: str) -> str:
    sql = v3._SQLITE if dialect == "sqlite" else v3._POSTGRESQL
    return f"""
    sum(duration) AS duration_s,
    {sql["avg"]} AS avg_duration_s,
    sum(CASE WHEN status = 'completed' AND duration IS NULL
              AND start_time IS NOT NULL AND end_time IS NOT NULL AND end_time >= start_time
        THEN {sql["whole_seconds"]} END) AS computed_duration_s,
    {_COST[dialect]} AS cost_usd,
    count({_FINAL_COST}) AS sessions_with_cost,
    sum(CASE WHEN {_LIVE} AND status = 'completed' AND NOT cost_final THEN 1 ELSE 0 END)
        AS cost_pending"""


def _create_views(v3: ModuleType, dialect: str) -> list[str]:
    sql = v3._SQLITE if dialect == "sqlite" else v3._POSTGRESQL
    measures = _measures(v3, dialect)
    return [
        f"""CREATE VIEW room_sessions_daily AS
SELECT
    {sql["day"]} AS day,
    count(*) AS sessions,{_STATUS_COUNTS}{measures}
FROM room_sessions
GROUP BY 1""",
        f"""CREATE VIEW room_sessions_by_room AS
SELECT
    s.room_id AS room_id,
    (SELECT coalesce(r.display_name, r.name) FROM room_sessions AS r
     WHERE r.room_id = s.room_id
     ORDER BY r.display_name IS NULL, coalesce(r.start_time, r.created_at) DESC, r.id DESC
     LIMIT 1) AS room_name,
    count(*) AS sessions,{_STATUS_COUNTS}{measures}
FROM room_sessions AS s
GROUP BY s.room_id""",
        f"""CREATE VIEW room_sessions_by_status AS
SELECT
    CASE WHEN deleted_at IS NOT NULL THEN 'deleted' ELSE status END AS status,
    count(*) AS sessions,{measures}
FROM room_sessions
GROUP BY 1""",
    ]


def _dialect() -> str:
    dialect = op.get_context().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise NotImplementedError(
            f"report views are written for SQLite and PostgreSQL, not {dialect}"
        )
    return dialect


def _drop_views(v3: ModuleType) -> None:
    for view in reversed(v3.VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {view}")


def upgrade() -> None:
    dialect = _dialect()
    v3 = _views_0003()
    _drop_views(v3)
    with op.batch_alter_table("room_sessions") as batch:
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("cost_final", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.add_column(
        "sync_runs", sa.Column("skipped", sa.Integer(), nullable=False, server_default="0")
    )
    op.execute(
        "UPDATE room_sessions SET cost_final = true "
        "WHERE status = 'completed' AND cost_in_dollars IS NOT NULL "
        "AND id NOT IN (SELECT session_id FROM sync_relist)"
    )
    for statement in _create_views(v3, dialect):
        op.execute(statement)


def downgrade() -> None:
    dialect = _dialect()
    v3 = _views_0003()
    _drop_views(v3)
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("skipped")
    with op.batch_alter_table("room_sessions") as batch:
        batch.drop_column("cost_final")
        batch.drop_column("deleted_at")
    for statement in v3._create_views(v3._SQLITE if dialect == "sqlite" else v3._POSTGRESQL):
        op.execute(statement)
