"""Storage: everything roomsync knows about SQL, behind one object, `Store`.

Only this package imports SQLAlchemy or names a dialect. Its modules, from the bottom up:
dberrors (database failures mapped once), sql (chunks, the dialect's INSERT, reads), schema
(the tables, as the migrations make them), engines (write, read-only and dry-run), migrate
(Alembic and the one revision check), sessions (the upsert), ledger, backlog, lock, reporting
(the SQL of `report` and `status`), and store (the `Store` that ties them together).
"""

from __future__ import annotations

from .backlog import OpenRow
from .engines import is_valid_url, shareable_url
from .lock import LockCheck, no_lock
from .migrate import current_revision, downgrade, head_revision, upgrade
from .reporting import ReportRow, RunInfo, Status
from .sessions import BatchResult
from .sql import chunked
from .store import Store

__all__ = [
    "BatchResult",
    "LockCheck",
    "OpenRow",
    "ReportRow",
    "RunInfo",
    "Status",
    "Store",
    "chunked",
    "current_revision",
    "downgrade",
    "head_revision",
    "is_valid_url",
    "no_lock",
    "shareable_url",
    "upgrade",
]
