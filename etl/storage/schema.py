"""The `room_sessions` table as SQLAlchemy sees it. Alembic migrations own the real schema;
`tests/test_migrations.py` checks that this mirror and the migrations agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """timestamptz on PostgreSQL; on SQLite, UTC text that sorts and compares chronologically.

    Values go in as aware datetimes (converted to UTC) and come out aware in UTC on both backends.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def uuid_text() -> sa.types.TypeEngine[Any]:
    """Native uuid on PostgreSQL; canonical lowercase text on SQLite (SQLAlchemy's own Uuid
    would store 32 hex digits there, which no one can read in SQL)."""
    return sa.Uuid(as_uuid=False).with_variant(sa.String(36), "sqlite")


def json_document() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


metadata = sa.MetaData()

room_sessions = sa.Table(
    "room_sessions",
    metadata,
    sa.Column("id", uuid_text(), primary_key=True),
    sa.Column("room_id", uuid_text(), nullable=True),
    sa.Column("name", sa.Text(), nullable=True),
    sa.Column("display_name", sa.Text(), nullable=True),
    sa.Column("max_members", sa.Integer(), nullable=True),
    sa.Column("quality", sa.Text(), nullable=True),
    sa.Column("fps", sa.Double(), nullable=True),
    sa.Column("join_from", UTCDateTime(), nullable=True),
    sa.Column("join_until", UTCDateTime(), nullable=True),
    sa.Column("remove_at", UTCDateTime(), nullable=True),
    sa.Column("remove_after_seconds_elapsed", sa.Integer(), nullable=True),
    sa.Column("layout", sa.Text(), nullable=True),
    sa.Column("record_on_start", sa.Boolean(), nullable=False),
    sa.Column("tone_on_entry_and_exit", sa.Boolean(), nullable=False),
    sa.Column("room_join_video_off", sa.Boolean(), nullable=False),
    sa.Column("user_join_video_off", sa.Boolean(), nullable=False),
    sa.Column("locked", sa.Boolean(), nullable=False),
    sa.Column("start_time", UTCDateTime(), nullable=True),
    sa.Column("end_time", UTCDateTime(), nullable=True),
    sa.Column("duration", sa.Integer(), nullable=True),
    sa.Column("status", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("preview_url", sa.Text(), nullable=True),
    sa.Column("prioritize_handraise", sa.Boolean(), nullable=True),
    sa.Column("sync_audio_video", sa.Boolean(), nullable=True),
    sa.Column("cost_in_dollars", sa.Double(), nullable=True),
    sa.Column("enable_room_previews", sa.Boolean(), nullable=True),
    sa.Column("locked_cover", sa.Text(), nullable=True),
    sa.Column("raw", json_document(), nullable=False),
    sa.Column("first_synced_at", UTCDateTime(), nullable=False),
    sa.Column("last_synced_at", UTCDateTime(), nullable=False),
    # When the session first answered 404 by id (kept for history; cleared if it comes back).
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
    # cost_in_dollars came from a list item of the completed session (see migration 0005).
    sa.Column("cost_final", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Index("ix_room_sessions_status", "status"),
    sa.Index("ix_room_sessions_start_time", "start_time"),
    sa.Index("ix_room_sessions_created_at", "created_at"),
    sa.Index("ix_room_sessions_room_id", "room_id"),
)

# The run ledger: one row per run of fetch, backfill or sync.
sync_runs = sa.Table(
    "sync_runs",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("command", sa.Text(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("outcome", sa.Text(), nullable=False),
    sa.Column("requested", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("inserted", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("unchanged", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("not_found", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("failed", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("skipped", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("watermark", UTCDateTime(), nullable=True),
    sa.Column("full_pass", sa.Boolean(), nullable=True),
    sa.Column("host", sa.Text(), nullable=True),
    sa.Column("pid", sa.Integer(), nullable=True),
    sa.Index("ix_sync_runs_command_started_at", "command", "started_at"),
)

# Ids whose last attempt failed, with the run that failed them; a later success removes them.
sync_failures = sa.Table(
    "sync_failures",
    metadata,
    sa.Column("session_id", uuid_text(), primary_key=True),
    sa.Column(
        "run_id", sa.Integer(), sa.ForeignKey("sync_runs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("error", sa.Text(), nullable=False),
    sa.Column("failed_at", UTCDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"),
    sa.Index("ix_sync_failures_run_id", "run_id"),
)

# Sessions stored final from a by-id body, whose list entry (the only source of the final cost)
# has not been read since; `sync` lists back far enough to reach the oldest of them.
sync_relist = sa.Table(
    "sync_relist",
    metadata,
    sa.Column("session_id", uuid_text(), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_sync_relist_created_at", "created_at"),
)

# --------------------------------------------------------------------------- the rest of the bill
# (migration 0006; the fields of members-recordings-logs.md, the body in `raw`)


def _synced_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("raw", json_document(), nullable=False),
        sa.Column("first_synced_at", UTCDateTime(), nullable=False),
        sa.Column("last_synced_at", UTCDateTime(), nullable=False),
    ]


# One row per attendance interval (a member item), never per person.
room_session_members = sa.Table(
    "room_session_members",
    metadata,
    sa.Column("id", uuid_text(), primary_key=True),
    sa.Column("room_session_id", uuid_text(), nullable=False),
    sa.Column("name", sa.Text(), nullable=True),
    sa.Column("join_time", UTCDateTime(), nullable=True),
    sa.Column("leave_time", UTCDateTime(), nullable=True),
    sa.Column("duration", sa.Integer(), nullable=True),
    sa.Column("cost_in_dollars", sa.Double(), nullable=True),
    *_synced_columns(),
    sa.Index("ix_room_session_members_room_session_id", "room_session_id"),
    sa.Index("ix_room_session_members_join_time", "join_time"),
)

# No `uri` column: the temporary signed link is never stored (not in `raw` either).
room_recordings = sa.Table(
    "room_recordings",
    metadata,
    sa.Column("id", uuid_text(), primary_key=True),
    sa.Column("room_session_id", uuid_text(), nullable=False),
    sa.Column("status", sa.Text(), nullable=True),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("duration", sa.Integer(), nullable=True),
    sa.Column("size_in_bytes", sa.BigInteger(), nullable=True),  # 64-bit: files over 2 GiB
    sa.Column("format", sa.Text(), nullable=True),
    sa.Column("cost_in_dollars", sa.Double(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    *_synced_columns(),
    sa.Index("ix_room_recordings_room_session_id", "room_session_id"),
    sa.Index("ix_room_recordings_created_at", "created_at"),
)

rooms = sa.Table(
    "rooms",
    metadata,
    sa.Column("id", uuid_text(), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("display_name", sa.Text(), nullable=True),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("max_members", sa.Integer(), nullable=True),
    sa.Column("quality", sa.Text(), nullable=True),
    sa.Column("fps", sa.Double(), nullable=True),
    sa.Column("join_from", UTCDateTime(), nullable=True),
    sa.Column("join_until", UTCDateTime(), nullable=True),
    sa.Column("remove_at", UTCDateTime(), nullable=True),
    sa.Column("remove_after_seconds_elapsed", sa.Integer(), nullable=True),
    sa.Column("layout", sa.Text(), nullable=True),
    sa.Column("record_on_start", sa.Boolean(), nullable=True),
    sa.Column("tone_on_entry_and_exit", sa.Boolean(), nullable=True),
    sa.Column("room_join_video_off", sa.Boolean(), nullable=True),
    sa.Column("user_join_video_off", sa.Boolean(), nullable=True),
    sa.Column("enable_room_previews", sa.Boolean(), nullable=True),
    sa.Column("sync_audio_video", sa.Boolean(), nullable=True),
    sa.Column("prioritize_handraise", sa.Boolean(), nullable=True),
    sa.Column("meta", json_document(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    *_synced_columns(),
    # set when a complete walk of the rooms list no longer lists it (migration 0008)
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
    sa.Index("ix_rooms_name", "name"),  # sessions whose room_id is null match by name
)

# Entries of /api/video/logs. An entry first seen deleted has only id, created_at and
# discarded_at, so every other typed column is nullable.
video_charges = sa.Table(
    "video_charges",
    metadata,
    sa.Column("id", uuid_text(), primary_key=True),
    sa.Column("room_session_id", uuid_text(), nullable=True),  # parsed from `url`
    sa.Column("source", sa.Text(), nullable=True),
    sa.Column("type", sa.Text(), nullable=True),
    sa.Column("url", sa.Text(), nullable=True),
    sa.Column("room_name", sa.Text(), nullable=True),
    sa.Column("status", sa.Text(), nullable=True),
    sa.Column("locked", sa.Boolean(), nullable=True),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Column("charge", sa.Double(), nullable=True),
    sa.Column("charge_details", json_document(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("discarded_at", UTCDateTime(), nullable=True),  # set while the API says deleted
    *_synced_columns(),
    sa.Index("ix_video_charges_room_session_id", "room_session_id"),
    sa.Index("ix_video_charges_created_at", "created_at"),
)

# ------------------------------------------------------------------ fetching the bill (0008)

# Per session: when its members / recordings were last fetched, and whether that was final.
room_session_details = sa.Table(
    "room_session_details",
    metadata,
    sa.Column("session_id", uuid_text(), primary_key=True),
    sa.Column("members_fetched_at", UTCDateTime(), nullable=True),
    sa.Column("members_final", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("recordings_fetched_at", UTCDateTime(), nullable=True),
    sa.Column("recordings_final", sa.Boolean(), nullable=False, server_default=sa.false()),
)

# (session, detail) pairs whose last fetch failed; a later success removes them.
sync_detail_failures = sa.Table(
    "sync_detail_failures",
    metadata,
    sa.Column("session_id", uuid_text(), primary_key=True),
    sa.Column("detail", sa.Text(), primary_key=True),
    sa.Column(
        "run_id", sa.Integer(), sa.ForeignKey("sync_runs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("error", sa.Text(), nullable=False),
    sa.Column("failed_at", UTCDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"),
    sa.Index("ix_sync_detail_failures_run_id", "run_id"),
)

# Named moments a sync resumes from (`charges`: the newest created_at a complete logs walk saw).
sync_cursors = sa.Table(
    "sync_cursors",
    metadata,
    sa.Column("name", sa.Text(), primary_key=True),
    sa.Column("moment", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
