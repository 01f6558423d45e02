"""Reporting queries over the stored sessions."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .schema import room_sessions


@dataclass(frozen=True)
class StatusTotal:
    status: str | None
    sessions: int
    duration_s: int


def status_totals(engine: Engine) -> list[StatusTotal]:
    """Sessions and summed known duration per status, most sessions first."""
    t = room_sessions
    query = (
        sa.select(t.c.status, sa.func.count(), sa.func.coalesce(sa.func.sum(t.c.duration), 0))
        .group_by(t.c.status)
        .order_by(sa.func.count().desc(), t.c.status)
    )
    with engine.connect() as conn:
        return [StatusTotal(s, int(n), int(d)) for s, n, d in conn.execute(query)]
