"""What the table still waits for, read before a run decides what to ask the API.

- *Live* rows: not deleted, status not final (in progress, null or anything else): their
  status, end and duration can still change.
- *Pending* rows: completed, not deleted, whose cost is not final yet (it came from a by-id
  body or from a list item of the session while it was live): only the list carries the final
  cost.
- *Exact* rows: completed, not deleted, with their final cost: nothing the API says can change
  them except a later update, and a backfill leaves them alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..outcomes import FINAL_STATUSES
from .schema import room_sessions
from .sql import chunked, read_rows


@dataclass(frozen=True)
class OpenRow:
    """A stored session a sync must still look at: live, or waiting for its final cost."""

    id: str
    created_at: datetime
    live: bool


def _is_final() -> sa.ColumnElement[bool]:
    return room_sessions.c.status.in_(FINAL_STATUSES)


def open_rows(engine: Engine) -> list[OpenRow]:
    """Live and pending rows (never deleted ones), oldest first."""
    t = room_sessions
    live = sa.or_(t.c.status.is_(None), sa.not_(_is_final()))
    pending = sa.and_(_is_final(), sa.not_(t.c.cost_final))
    query = (
        sa.select(t.c.id, t.c.created_at, live.label("live"))
        .where(t.c.deleted_at.is_(None), sa.or_(live, pending))
        .order_by(t.c.created_at, t.c.id)
    )
    return [
        OpenRow(str(i), created, bool(is_live)) for i, created, is_live in read_rows(engine, query)
    ]


def count_since(engine: Engine, moment: datetime) -> int:
    """Stored, not deleted sessions created at or after `moment`: about how deep in the list
    (newest first) a session created at `moment` sits."""
    t = room_sessions
    query = sa.select(sa.func.count()).where(t.c.created_at >= moment, t.c.deleted_at.is_(None))
    return int(read_rows(engine, query)[0][0])


def live_count(engine: Engine) -> int:
    """Stored live rows: about how many sessions the `status=in-progress` filter lists."""
    t = room_sessions
    live = sa.or_(t.c.status.is_(None), sa.not_(_is_final()))
    query = sa.select(sa.func.count()).where(live, t.c.deleted_at.is_(None))
    return int(read_rows(engine, query)[0][0])


def exact_ids(engine: Engine, session_ids: Sequence[str]) -> set[str]:
    """Those of `session_ids` stored final with their final cost (and not deleted)."""
    t = room_sessions
    found: set[str] = set()
    for chunk in chunked(session_ids):
        query = sa.select(t.c.id).where(
            t.c.id.in_(chunk), _is_final(), t.c.cost_final, t.c.deleted_at.is_(None)
        )
        found.update(str(row[0]) for row in read_rows(engine, query))
    return found
