"""Run ledger: sync_runs (one row per run) and sync_failures (ids to retry).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _count(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), nullable=False, server_default="0")


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("finished_at", ts, nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        _count("requested"),
        _count("inserted"),
        _count("updated"),
        _count("unchanged"),
        _count("not_found"),
        _count("failed"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("watermark", ts, nullable=True),
        sa.Column("full_pass", sa.Boolean(), nullable=True),
        sa.Column("host", sa.Text(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
    )
    op.create_index("ix_sync_runs_command_started_at", "sync_runs", ["command", "started_at"])
    op.create_table(
        "sync_failures",
        sa.Column(
            "session_id",
            sa.Uuid(as_uuid=False).with_variant(sa.String(36), "sqlite"),
            primary_key=True,
        ),
        sa.Column(
            "run_id",
            sa.Integer(),
            sa.ForeignKey("sync_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("failed_at", ts, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"),
    )
    op.create_index("ix_sync_failures_run_id", "sync_failures", ["run_id"])


def downgrade() -> None:
    op.drop_table("sync_failures")
    op.drop_table("sync_runs")
