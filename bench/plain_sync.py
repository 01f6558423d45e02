"""Baseline (b): the plain sequential export script, the way the vendor's export guide works.

One `httpx.get` at a time, `session.merge()` of an ORM object per row and a commit per row, into
its own SQLite table. No retries, no validation beyond `response.json()`. Reads the same
environment as roomsync; prints one JSON summary line.

    python bench/plain_sync.py ids.txt
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import JSON, DateTime, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class RoomSession(Base):
    """The columns a reporting export keeps, plus the body as received."""

    __tablename__ = "room_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    room_id: Mapped[str | None] = mapped_column(String(36))
    name: Mapped[str | None]
    status: Mapped[str | None]
    duration: Mapped[int | None]
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def to_row(body: dict[str, Any]) -> RoomSession:
    return RoomSession(
        id=body["id"],
        room_id=body.get("room_id"),
        name=body.get("name"),
        status=body.get("status"),
        duration=body.get("duration"),
        start_time=_time(body.get("start_time")),
        end_time=_time(body.get("end_time")),
        created_at=_time(body["created_at"]),
        updated_at=_time(body["updated_at"]),
        raw=body,
    )


def main(path: str) -> int:
    engine = create_engine(os.environ["DATABASE_URL"])
    Base.metadata.create_all(engine)
    auth = (os.environ["SIGNALWIRE_PROJECT_ID"], os.environ["SIGNALWIRE_API_TOKEN"])
    counts = {"requested": 0, "stored": 0, "not_found": 0, "failed": 0}
    started = time.monotonic()
    with (
        httpx.Client(base_url=os.environ["SIGNALWIRE_SPACE"], auth=auth, timeout=30) as client,
        Session(engine) as session,
        open(path, encoding="utf-8") as ids,
    ):
        for line in ids:
            session_id = line.strip()
            if not session_id:
                continue
            counts["requested"] += 1
            response = client.get(f"/api/video/room_sessions/{session_id}")
            if response.status_code == 404:
                counts["not_found"] += 1
                continue
            if response.status_code != 200:
                counts["failed"] += 1
                continue
            session.merge(to_row(response.json()))
            session.commit()
            counts["stored"] += 1
    print(json.dumps({**counts, "elapsed_s": round(time.monotonic() - started, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
