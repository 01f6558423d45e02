"""The bill as views: session_costs, daily_usage, concurrency_peaks, room_peaks; and the views of
0003/0005 recreated so that no cost sum overflows (issue 22, defect 8).

Every view gives the same rows on SQLite and PostgreSQL (docs/reporting.md describes each, with
an example query).

- Money is summed without overflow on both backends and a sum beyond what a double holds
  (1.8e308) is NULL, the rule `roomsync report` applies (its row there carries a note; a view has
  no room for one). On PostgreSQL a sum of doubles fails the whole query ("value out of range"),
  so money is summed as numeric (exact; each double enters with its 15 significant digits, as
  `report` sums it) and a sum that no longer fits a double is NULL before the cast back. On
  SQLite the sum is a double that becomes Infinity, which the same test turns into NULL.
- A session is placed on the UTC day of its `start_time`, or of its `created_at` when it never
  started, as in the other views and `report`. Sessions deleted upstream (`deleted_at`) are kept
  in every view, as `report` keeps them: their minutes and money were spent. They are never
  `cost_pending` and never live.
- Costs compared by `session_costs.cost_agrees` are three estimates of the participation charge:
  the session's final list cost, the sum of its members' costs, and its log charge less its
  recordings' cost (members-recordings-logs.md: recordings are most likely charged on top).
- Concurrency: a session is live from `start_time` until `end_time`; a member present from
  `join_time` until `leave_time`, else its session's `end_time`. An interval with no end counts
  until now only while its session is live (in progress, not deleted); otherwise its end is
  unknown and it is left out. An end later than now counts until now (so that one absurd
  `end_time` cannot make the day series run to the year 9999). Intervals are half-open: one
  that ends at the instant another begins does not overlap it.

The 0005 views are dropped and created again with the guarded sums; a downgrade drops the new
views and restores 0005's own exactly.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Dropped in this order (daily_usage and session_costs read nothing but tables).
NEW_VIEWS = ("room_peaks", "concurrency_peaks", "daily_usage", "session_costs")

DOUBLE_MAX = "1.7976931348623157e308"


def _migration(name: str) -> ModuleType:
    """An earlier migration (their file names are not importable module names)."""
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"roomsync_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- dialects

_SQLITE = {
    # money as it is summed: a double here, exact numeric on PostgreSQL
    "num": "{0}",
    # a money sum as a double rounded to 6 decimals; NULL when beyond a double (Infinity)
    "money": f"(CASE WHEN abs({{0}}) <= {DOUBLE_MAX} THEN round({{0}}, 6) END)",
    "minutes": "({0} / 60.0)",
    # timestamps are UTC text 'YYYY-MM-DD HH:MM:SS.ffffff': the day is its first ten characters
    "day": "substr({0}, 1, 10)",
    "next_day": "date({0}, '+1 day')",
    "midnight": "({0} || ' 00:00:00.000000')",
    "now": "strftime('%Y-%m-%d %H:%M:%f000', 'now')",
}

_POSTGRESQL = {
    "num": "CAST({0} AS numeric)",
    "money": (
        f"(CASE WHEN abs({{0}}) <= {DOUBLE_MAX} THEN CAST(round({{0}}, 6) AS double precision) END)"
    ),
    "minutes": "(CAST({0} AS double precision) / 60)",
    "day": "CAST(({0} AT TIME ZONE 'UTC') AS date)",
    "next_day": "CAST({0} + 1 AS date)",
    "midnight": "(CAST({0} AS timestamp) AT TIME ZONE 'UTC')",
    "now": "now()",
}


def _sql(dialect: str) -> dict[str, str]:
    if dialect == "sqlite":
        return _SQLITE
    if dialect == "postgresql":
        return _POSTGRESQL
    raise NotImplementedError(f"report views are written for SQLite and PostgreSQL, not {dialect}")


def _dialect() -> str:
    dialect = op.get_context().dialect.name  # works offline (`alembic upgrade --sql`) too
    _sql(dialect)
    return dialect


# --------------------------------------------------------------------------- 0005's views, guarded


def _guarded_0005(dialect: str) -> list[str]:
    """0005's three views with the one change: cost_usd cannot overflow."""
    v3, v5 = _migration("0003_report_views.py"), _migration("0005_deleted_and_final_cost.py")
    sql = _sql(dialect)
    cost = sql["money"].format(f"sum({sql['num'].format(v5._FINAL_COST)})")
    statements = v5._create_views(v3, dialect)
    old = v5._COST[dialect]
    assert all(old in s for s in statements)
    return [s.replace(old, cost) for s in statements]


def _original_0005(dialect: str) -> list[str]:
    v3, v5 = _migration("0003_report_views.py"), _migration("0005_deleted_and_final_cost.py")
    return list(v5._create_views(v3, dialect))


# --------------------------------------------------------------------------- the bill


def _per_session(sql: dict[str, str]) -> str:
    """One row per stored session with its members', recordings' and charges' sums, money as
    summed (not yet rounded or guarded) so that later sums can overflow only into NULL."""
    num = sql["num"].format
    return f"""per_session AS (
    SELECT
        s.id AS room_session_id,
        s.name AS room_name,
        {sql["day"].format("coalesce(s.start_time, s.created_at)")} AS day,
        s.status AS status,
        s.deleted_at AS deleted_at,
        s.cost_final AS cost_final,
        s.duration AS duration,
        coalesce(m.members, 0) AS members,
        m.member_seconds AS member_seconds,
        m.member_cost AS member_cost,
        coalesce(r.recordings, 0) AS recordings,
        r.recording_seconds AS recording_seconds,
        r.recording_cost AS recording_cost,
        c.charge AS charge,
        {num("CASE WHEN s.cost_final THEN s.cost_in_dollars END")} AS session_cost
    FROM room_sessions AS s
    LEFT JOIN (
        SELECT room_session_id, count(*) AS members, sum(duration) AS member_seconds,
               sum({num("cost_in_dollars")}) AS member_cost
        FROM room_session_members GROUP BY room_session_id
    ) AS m ON m.room_session_id = s.id
    LEFT JOIN (
        SELECT room_session_id, count(*) AS recordings, sum(duration) AS recording_seconds,
               sum({num("cost_in_dollars")}) AS recording_cost
        FROM room_recordings GROUP BY room_session_id
    ) AS r ON r.room_session_id = s.id
    LEFT JOIN (
        SELECT room_session_id, sum({num("charge")}) AS charge
        FROM video_charges
        WHERE discarded_at IS NULL AND room_session_id IS NOT NULL
        GROUP BY room_session_id
    ) AS c ON c.room_session_id = s.id
)"""


def _differs(a: str, b: str) -> str:
    """Two known amounts more than one cent apart (NULL when either is unknown)."""
    return f"round(abs({a} - {b}), 6) > 0.01"


def _session_costs(sql: dict[str, str]) -> str:
    money, minutes = sql["money"].format, sql["minutes"].format
    sources = ("session_cost", "member_cost", "charged_participation")
    known = " + ".join(f"CASE WHEN {s} IS NOT NULL THEN 1 ELSE 0 END" for s in sources)
    a, b, c = sources
    return f"""CREATE VIEW session_costs AS
WITH {_per_session(sql)},
sources AS (
    SELECT per_session.*, charge - coalesce(recording_cost, 0) AS charged_participation
    FROM per_session
)
SELECT
    room_session_id,
    room_name,
    day,
    {minutes("duration")} AS minutes,
    members,
    {minutes("member_seconds")} AS participant_minutes,
    {money("session_cost")} AS session_cost,
    {money("member_cost")} AS member_cost,
    {money("recording_cost")} AS recording_cost,
    {money("charge")} AS charge,
    CASE
        WHEN {known} < 2 THEN NULL
        WHEN {_differs(a, b)} OR {_differs(a, c)} OR {_differs(b, c)} THEN false
        ELSE true
    END AS cost_agrees,
    recordings,
    {minutes("recording_seconds")} AS recording_minutes,
    status,
    deleted_at
FROM sources"""


def _daily_usage(sql: dict[str, str]) -> str:
    money, minutes = sql["money"].format, sql["minutes"].format
    return f"""CREATE VIEW daily_usage AS
WITH {_per_session(sql)},
spent AS (
    SELECT per_session.*,
        coalesce(charge, CASE WHEN session_cost IS NOT NULL OR recording_cost IS NOT NULL
                              THEN coalesce(session_cost, 0) + coalesce(recording_cost, 0) END)
            AS spend
    FROM per_session
)
SELECT
    day,
    room_name,
    count(*) AS sessions,
    {minutes("sum(duration)")} AS minutes,
    {minutes("sum(member_seconds)")} AS participant_minutes,
    {minutes("sum(recording_seconds)")} AS recording_minutes,
    {money("sum(spend)")} AS cost,
    sum(CASE WHEN deleted_at IS NULL AND status = 'completed' AND NOT cost_final
        THEN 1 ELSE 0 END) AS cost_pending
FROM spent
GROUP BY day, room_name"""


def _live_end(session: str, sql: dict[str, str]) -> str:
    """Now, while the session is live (in progress, not deleted); else NULL (end unknown)."""
    return (
        f"CASE WHEN {session}.status = 'in-progress' AND {session}.deleted_at IS NULL "
        f"THEN {sql['now']} END"
    )


def _member_spans(sql: dict[str, str]) -> str:
    return f"""member_spans AS (
    SELECT s.name AS room_name, m.join_time AS t0,
           coalesce(m.leave_time, s.end_time, {_live_end("s", sql)}) AS t1
    FROM room_session_members AS m
    LEFT JOIN room_sessions AS s ON s.id = m.room_session_id
    WHERE m.join_time IS NOT NULL
)"""


def _concurrency_peaks(sql: dict[str, str]) -> str:
    """A sweep over every start and end, with a marker at each UTC midnight between the first
    and the last so that a day entered with sessions or members still present counts them."""
    day = sql["day"].format
    return f"""CREATE VIEW concurrency_peaks AS
WITH RECURSIVE
{_member_spans(sql)},
spans AS (
    SELECT 'sessions' AS kind, s.start_time AS t0,
           coalesce(s.end_time, {_live_end("s", sql)}) AS t1
    FROM room_sessions AS s WHERE s.start_time IS NOT NULL
    UNION ALL
    SELECT 'members' AS kind, t0, t1 FROM member_spans
),
clipped AS (
    SELECT kind, t0, CASE WHEN t1 > {sql["now"]} THEN {sql["now"]} ELSE t1 END AS t1 FROM spans
),
valid AS (SELECT kind, t0, t1 FROM clipped WHERE t1 IS NOT NULL AND t1 > t0),
bounds AS (SELECT min({day("t0")}) AS first_day, max({day("t1")}) AS last_day FROM valid),
days(day) AS (
    SELECT first_day FROM bounds WHERE first_day IS NOT NULL
    UNION ALL
    SELECT {sql["next_day"].format("days.day")} FROM days, bounds WHERE days.day < bounds.last_day
),
events AS (
    SELECT kind, t0 AS t, 1 AS ord, 1 AS delta FROM valid
    UNION ALL
    SELECT kind, t1 AS t, 0 AS ord, -1 AS delta FROM valid
    UNION ALL
    SELECT k.kind, {sql["midnight"].format("days.day")} AS t, 2 AS ord, 0 AS delta
    FROM days CROSS JOIN (SELECT 'sessions' AS kind UNION ALL SELECT 'members' AS kind) AS k
),
levels AS (
    SELECT kind, t, {day("t")} AS day,
           sum(delta) OVER (PARTITION BY kind ORDER BY t, ord
                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS level
    FROM events
),
peaks AS (
    SELECT kind, day, t, level, max(level) OVER (PARTITION BY kind, day) AS peak FROM levels
),
per_kind AS (
    SELECT kind, day, peak, CASE WHEN peak > 0 THEN min(t) END AS peak_at
    FROM peaks WHERE level = peak GROUP BY kind, day, peak
)
SELECT
    day,
    max(CASE WHEN kind = 'sessions' THEN peak END) AS peak_sessions,
    max(CASE WHEN kind = 'sessions' THEN peak_at END) AS peak_sessions_at,
    max(CASE WHEN kind = 'members' THEN peak END) AS peak_members,
    max(CASE WHEN kind = 'members' THEN peak_at END) AS peak_members_at
FROM per_kind
GROUP BY day
HAVING max(peak) > 0"""


def _room_peaks(sql: dict[str, str]) -> str:
    """Per room name: the most members present at one instant, against the room's max_members
    (the rooms table's, else its newest session's)."""
    return f"""CREATE VIEW room_peaks AS
WITH
{_member_spans(sql)},
events AS (
    SELECT room_name, t0 AS t, 1 AS ord, 1 AS delta FROM member_spans
    WHERE t1 IS NOT NULL AND t1 > t0
    UNION ALL
    SELECT room_name, t1 AS t, 0 AS ord, -1 AS delta FROM member_spans
    WHERE t1 IS NOT NULL AND t1 > t0
),
levels AS (
    SELECT room_name, t,
           sum(delta) OVER (PARTITION BY room_name ORDER BY t, ord
                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS level
    FROM events
),
peaks AS (
    SELECT room_name, t, level, max(level) OVER (PARTITION BY room_name) AS peak FROM levels
),
per_room AS (
    SELECT room_name, peak, min(t) AS peak_at FROM peaks WHERE level = peak
    GROUP BY room_name, peak
)
SELECT
    p.room_name,
    coalesce(
        (SELECT r.id FROM rooms AS r WHERE r.name = p.room_name ORDER BY r.updated_at DESC
         LIMIT 1),
        (SELECT s.room_id FROM room_sessions AS s
         WHERE s.name = p.room_name AND s.room_id IS NOT NULL
         ORDER BY s.created_at DESC LIMIT 1)
    ) AS room_id,
    coalesce(
        (SELECT r.max_members FROM rooms AS r WHERE r.name = p.room_name
         ORDER BY r.updated_at DESC LIMIT 1),
        (SELECT s.max_members FROM room_sessions AS s WHERE s.name = p.room_name
         ORDER BY s.created_at DESC LIMIT 1)
    ) AS max_members,
    p.peak AS peak_members,
    p.peak_at AS peak_members_at
FROM per_room AS p"""


def _create_new(dialect: str) -> list[str]:
    sql = _sql(dialect)
    return [_session_costs(sql), _daily_usage(sql), _concurrency_peaks(sql), _room_peaks(sql)]


# --------------------------------------------------------------------------- up and down


def _drop(views: Sequence[str]) -> None:
    for view in views:
        op.execute(f"DROP VIEW IF EXISTS {view}")


def upgrade() -> None:
    dialect = _dialect()
    v3 = _migration("0003_report_views.py")
    _drop(tuple(reversed(v3.VIEWS)))
    for statement in [*_guarded_0005(dialect), *_create_new(dialect)]:
        op.execute(statement)


def downgrade() -> None:
    dialect = _dialect()
    v3 = _migration("0003_report_views.py")
    _drop(NEW_VIEWS)
    _drop(tuple(reversed(v3.VIEWS)))
    for statement in _original_0005(dialect):
        op.execute(statement)
