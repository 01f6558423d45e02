"""sync_relist: sessions that became final by id and still need their list entry (final cost).

A by-id body has no `cost_in_dollars`; only the list carries it. A session stored final from a
by-id body is queued here until a sync lists it again, however old it is and whichever command
(fetch, backfill, sync) stored it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_relist",
        sa.Column(
            "session_id",
            sa.Uuid(as_uuid=False).with_variant(sa.String(36), "sqlite"),
            primary_key=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sync_relist_created_at", "sync_relist", ["created_at"])


def downgrade() -> None:
    op.drop_table("sync_relist")
