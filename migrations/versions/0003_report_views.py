"""Reporting views over room_sessions: per UTC day, per room, per status.

Every view exposes the same measures (see docs/reporting.md):
- `duration_s`: sum of the API's `duration` where known (NULL when none is known);
- `computed_duration_s`: for completed sessions whose `duration` is null but whose start and end
  times are both set (end not before start), the sum of whole seconds between them; kept apart
  from `duration_s` so that no invented number mixes with the API's own;
- `cost_usd`: sum of `cost_in_dollars` where known (NULL when none is known), rounded to 6
  decimals so that both backends return the same number, and `sessions_with_cost`.

Sessions are placed in time by `start_time`, or `created_at` where `start_time` is null. Days are
UTC on both backends. A later migration that alters `room_sessions` must drop these views first
and recreate them afterwards (PostgreSQL refuses to alter a column a view uses, and SQLite's
table copy breaks views that name the table).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = ("room_sessions_daily", "room_sessions_by_room", "room_sessions_by_status")

# On SQLite timestamps are UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'. SQLite's date and time
# functions round fractions to milliseconds (strftime('%s', '2026-10-11 23:59:59.9996') is already
# the next day), so days are cut from the text, and whole seconds between two times come from the
# text without its fraction plus the microseconds written after it.
_SQLITE = {
    "day": "substr(coalesce(start_time, created_at), 1, 10)",
    "whole_seconds": (
        "((CAST(strftime('%s', substr(end_time, 1, 19)) AS INTEGER)\n"
        "           - CAST(strftime('%s', substr(start_time, 1, 19)) AS INTEGER)) * 1000000\n"
        "          + CAST(substr(end_time || '000000', 21, 6) AS INTEGER)\n"
        "          - CAST(substr(start_time || '000000', 21, 6) AS INTEGER)) / 1000000"
    ),
    "avg": "round(avg(duration), 1)",
    "cost": "round(sum(cost_in_dollars), 6)",
}

_POSTGRESQL = {
    "day": "(coalesce(start_time, created_at) AT TIME ZONE 'UTC')::date",
    "whole_seconds": (
        "floor(extract(epoch FROM end_time) - extract(epoch FROM start_time))::integer"
    ),
    "avg": "round(avg(duration), 1)::double precision",
    "cost": "round(sum(cost_in_dollars)::numeric, 6)::double precision",
}

_STATUS_COUNTS = """
    sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) AS completed,
    sum(CASE WHEN status = 'in-progress' THEN 1 ELSE 0 END) AS in_progress,
    sum(CASE WHEN status IS NULL OR status NOT IN ('completed', 'in-progress')
        THEN 1 ELSE 0 END) AS other_status,"""


def _measures(sql: dict[str, str]) -> str:
    """The duration and cost columns every view shares."""
    return f"""
    sum(duration) AS duration_s,
    {sql["avg"]} AS avg_duration_s,
    sum(CASE WHEN status = 'completed' AND duration IS NULL
              AND start_time IS NOT NULL AND end_time IS NOT NULL AND end_time >= start_time
        THEN {sql["whole_seconds"]} END) AS computed_duration_s,
    {sql["cost"]} AS cost_usd,
    count(cost_in_dollars) AS sessions_with_cost"""


def _create_views(sql: dict[str, str]) -> list[str]:
    measures = _measures(sql)
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
    status,
    count(*) AS sessions,{measures}
FROM room_sessions
GROUP BY status""",
    ]


def upgrade() -> None:
    dialect = op.get_context().dialect.name  # works offline (`alembic upgrade --sql`) too
    if dialect == "sqlite":
        statements = _create_views(_SQLITE)
    elif dialect == "postgresql":
        statements = _create_views(_POSTGRESQL)
    else:
        raise NotImplementedError(
            f"report views are written for SQLite and PostgreSQL, not {dialect}"
        )
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {view}")
