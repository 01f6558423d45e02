"""What fetching the rest of the bill needs to remember between runs.

- `room_session_details`: per session, when its members and its recordings were last fetched
  and whether what was fetched is final (nothing in it can still change: every member has
  left, every recording is completed). A sync fetches a completed session's detail until it is
  final, and never again after that (etl/storage/bill.py, `detail_due`).
- `sync_detail_failures`: the detail failure ledger, one row per (session, detail) whose last
  fetch failed, with the run that failed it and why; the next run and `--retry-failed` retry
  it, and a success removes it. It never holds the session row back: that has its own ledger.
- `sync_cursors`: named moments a sync resumes from; `charges` is the newest `created_at` a
  complete walk of /api/video/logs listed.
- `rooms.deleted_at`: set when a complete walk of /api/video/rooms no longer lists the room
  (the row stays, for sessions that name it); cleared when it is listed again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _uuid() -> sa.types.TypeEngine:
    return sa.Uuid(as_uuid=False).with_variant(sa.String(36), "sqlite")


def _ts() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "room_session_details",
        sa.Column("session_id", _uuid(), primary_key=True),
        sa.Column("members_fetched_at", _ts(), nullable=True),
        sa.Column("members_final", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("recordings_fetched_at", _ts(), nullable=True),
        sa.Column("recordings_final", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "sync_detail_failures",
        sa.Column("session_id", _uuid(), primary_key=True),
        sa.Column("detail", sa.Text(), primary_key=True),
        sa.Column(
            "run_id",
            sa.Integer(),
            sa.ForeignKey("sync_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("failed_at", _ts(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"),
    )
    op.create_index("ix_sync_detail_failures_run_id", "sync_detail_failures", ["run_id"])
    op.create_table(
        "sync_cursors",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("moment", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
    )
    # Plain ALTER TABLE on both backends (SQLite 3.35+ drops a column in place): a batch
    # operation would rebuild `rooms` under another name, which the 0007 views reading it refuse.
    op.add_column("rooms", sa.Column("deleted_at", _ts(), nullable=True))


def downgrade() -> None:
    op.drop_column("rooms", "deleted_at")
    op.drop_table("sync_cursors")
    op.drop_index("ix_sync_detail_failures_run_id", "sync_detail_failures")
    op.drop_table("sync_detail_failures")
    op.drop_table("room_session_details")
