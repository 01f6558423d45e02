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
    sa.Index("ix_room_sessions_status", "status"),
    sa.Index("ix_room_sessions_start_time", "start_time"),
    sa.Index("ix_room_sessions_created_at", "created_at"),
    sa.Index("ix_room_sessions_room_id", "room_id"),
)
