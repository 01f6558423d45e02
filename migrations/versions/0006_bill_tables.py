"""The rest of the bill: room_session_members, room_recordings, rooms, video_charges.

One column per field of the vendor's objects (members-recordings-logs.md), the whole body in
`raw`, and the sync times like room_sessions. Native types on PostgreSQL (uuid, timestamptz,
jsonb, bigint, double precision); on SQLite the same types 0001 uses.

- `room_session_members`: one row per attendance interval (a member item), never per person.
- `room_recordings`: `size_in_bytes` is 64-bit (the spec's int32 cannot hold a file over
  2 GiB). There is no `uri` column: the temporary signed link is never stored, not even in raw.
- `rooms`: `meta` (the customer's free JSON object) as JSON.
- `video_charges`: the entries of /api/video/logs; `room_session_id` is parsed from `url`
  (null when the url names no room session); `charge_details` as JSON; `discarded_at` is set
  while the API reports the entry deleted. Every typed column but id and created_at is
  nullable, since an entry first seen deleted comes as {id, discarded_at, created_at} only.

No foreign keys to room_sessions: a session's detail may be stored before or without the session
row (and session rows are never deleted, only marked), so the join is by value.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("room_session_members", "room_recordings", "rooms", "video_charges")


def _uuid() -> sa.types.TypeEngine:
    return sa.Uuid(as_uuid=False).with_variant(sa.String(36), "sqlite")


def _ts() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _synced() -> list[sa.Column]:
    return [
        sa.Column("raw", _json(), nullable=False),
        sa.Column("first_synced_at", _ts(), nullable=False),
        sa.Column("last_synced_at", _ts(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "room_session_members",
        sa.Column("id", _uuid(), primary_key=True),
        sa.Column("room_session_id", _uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("join_time", _ts(), nullable=True),
        sa.Column("leave_time", _ts(), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("cost_in_dollars", sa.Double(), nullable=True),
        *_synced(),
    )
    op.create_index(
        "ix_room_session_members_room_session_id", "room_session_members", ["room_session_id"]
    )
    op.create_index("ix_room_session_members_join_time", "room_session_members", ["join_time"])

    op.create_table(
        "room_recordings",
        sa.Column("id", _uuid(), primary_key=True),
        sa.Column("room_session_id", _uuid(), nullable=False),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("started_at", _ts(), nullable=True),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("size_in_bytes", sa.BigInteger(), nullable=True),
        sa.Column("format", sa.Text(), nullable=True),
        sa.Column("cost_in_dollars", sa.Double(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        *_synced(),
    )
    op.create_index("ix_room_recordings_room_session_id", "room_recordings", ["room_session_id"])
    op.create_index("ix_room_recordings_created_at", "room_recordings", ["created_at"])

    op.create_table(
        "rooms",
        sa.Column("id", _uuid(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("max_members", sa.Integer(), nullable=True),
        sa.Column("quality", sa.Text(), nullable=True),
        sa.Column("fps", sa.Double(), nullable=True),
        sa.Column("join_from", _ts(), nullable=True),
        sa.Column("join_until", _ts(), nullable=True),
        sa.Column("remove_at", _ts(), nullable=True),
        sa.Column("remove_after_seconds_elapsed", sa.Integer(), nullable=True),
        sa.Column("layout", sa.Text(), nullable=True),
        sa.Column("record_on_start", sa.Boolean(), nullable=True),
        sa.Column("tone_on_entry_and_exit", sa.Boolean(), nullable=True),
        sa.Column("room_join_video_off", sa.Boolean(), nullable=True),
        sa.Column("user_join_video_off", sa.Boolean(), nullable=True),
        sa.Column("enable_room_previews", sa.Boolean(), nullable=True),
        sa.Column("sync_audio_video", sa.Boolean(), nullable=True),
        sa.Column("prioritize_handraise", sa.Boolean(), nullable=True),
        sa.Column("meta", _json(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        *_synced(),
    )
    op.create_index("ix_rooms_name", "rooms", ["name"])

    op.create_table(
        "video_charges",
        sa.Column("id", _uuid(), primary_key=True),
        sa.Column("room_session_id", _uuid(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("room_name", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("locked", sa.Boolean(), nullable=True),
        sa.Column("started_at", _ts(), nullable=True),
        sa.Column("ended_at", _ts(), nullable=True),
        sa.Column("charge", sa.Double(), nullable=True),
        sa.Column("charge_details", _json(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("discarded_at", _ts(), nullable=True),
        *_synced(),
    )
    op.create_index("ix_video_charges_room_session_id", "video_charges", ["room_session_id"])
    op.create_index("ix_video_charges_created_at", "video_charges", ["created_at"])


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
