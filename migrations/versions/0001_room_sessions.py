"""Create room_sessions: one column per field of the API's Room Session, plus raw and sync times.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _uuid() -> sa.types.TypeEngine:
    return sa.Uuid(as_uuid=False).with_variant(sa.String(36), "sqlite")


def _ts() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "room_sessions",
        sa.Column("id", _uuid(), primary_key=True),
        sa.Column("room_id", _uuid(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("max_members", sa.Integer(), nullable=True),
        sa.Column("quality", sa.Text(), nullable=True),
        sa.Column("fps", sa.Double(), nullable=True),
        sa.Column("join_from", _ts(), nullable=True),
        sa.Column("join_until", _ts(), nullable=True),
        sa.Column("remove_at", _ts(), nullable=True),
        sa.Column("remove_after_seconds_elapsed", sa.Integer(), nullable=True),
        sa.Column("layout", sa.Text(), nullable=True),
        sa.Column("record_on_start", sa.Boolean(), nullable=False),
        sa.Column("tone_on_entry_and_exit", sa.Boolean(), nullable=False),
        sa.Column("room_join_video_off", sa.Boolean(), nullable=False),
        sa.Column("user_join_video_off", sa.Boolean(), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("start_time", _ts(), nullable=True),
        sa.Column("end_time", _ts(), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.Column("preview_url", sa.Text(), nullable=True),
        sa.Column("prioritize_handraise", sa.Boolean(), nullable=True),
        sa.Column("sync_audio_video", sa.Boolean(), nullable=True),
        sa.Column("cost_in_dollars", sa.Double(), nullable=True),
        sa.Column("enable_room_previews", sa.Boolean(), nullable=True),
        sa.Column("locked_cover", sa.Text(), nullable=True),
        sa.Column("raw", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("first_synced_at", _ts(), nullable=False),
        sa.Column("last_synced_at", _ts(), nullable=False),
    )
    op.create_index("ix_room_sessions_status", "room_sessions", ["status"])
    op.create_index("ix_room_sessions_start_time", "room_sessions", ["start_time"])
    op.create_index("ix_room_sessions_created_at", "room_sessions", ["created_at"])
    op.create_index("ix_room_sessions_room_id", "room_sessions", ["room_id"])


def downgrade() -> None:
    op.drop_table("room_sessions")
