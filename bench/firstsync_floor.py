"""The floor of issue 21's first-sync measure: fetch the list pages, decode them, insert the rows
with the bare driver. Nothing else: no validation, no retries, no bounds, no ledger, no lock.

The walk is the API's own: `GET /api/video/room_sessions?page_size=1000` with Basic auth, then
every `links.next` as given (a path or an absolute URL), over one keep-alive `http.client`
connection (the walk is sequential: each page names the next). Each page is `json.loads`ed and
its sessions inserted in one transaction of their own, into the `room_sessions` table that
`roomsync db upgrade` created (so the same columns, types and indexes as roomsync writes), with
each value converted as roomsync stores it, inside the measured run:

- SQLite (sqlite3): `executemany` of a plain `INSERT`; timestamps as SQLAlchemy's UTC text,
  `raw` as `json.dumps` of the item, booleans as the driver binds them.
- PostgreSQL (psycopg 3): `COPY room_sessions (...) FROM STDIN`, timestamps as aware datetimes.

`first_synced_at` and `last_synced_at` are the run's start, `cost_final` true for a completed
session's listed cost (roomsync's rule for a list item). Settings come from the environment
roomsync reads (SIGNALWIRE_SPACE as a base URL, SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN,
DATABASE_URL: `sqlite:///PATH` or `postgresql[+psycopg]://...`). Prints one JSON line.

    python bench/firstsync_floor.py
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

LIST = "/api/video/room_sessions?page_size=1000"
# room_sessions' columns in the table's order, as roomsync stores a list item.
ITEM_COLUMNS = (
    "id", "room_id", "name", "display_name", "max_members", "quality", "fps", "join_from",
    "join_until", "remove_at", "remove_after_seconds_elapsed", "layout", "record_on_start",
    "tone_on_entry_and_exit", "room_join_video_off", "user_join_video_off", "locked",
    "start_time", "end_time", "duration", "status", "created_at", "updated_at", "preview_url",
    "prioritize_handraise", "sync_audio_video", "cost_in_dollars", "enable_room_previews",
    "locked_cover",
)  # fmt: skip
COLUMNS = (*ITEM_COLUMNS, "raw", "first_synced_at", "last_synced_at", "cost_final")
TIMES = frozenset(
    ("join_from", "join_until", "remove_at", "start_time", "end_time", "created_at", "updated_at")
)
GETTERS = tuple((name, name in TIMES) for name in ITEM_COLUMNS)


def sqlite_time(text: str) -> str:
    """RFC 3339 text as SQLAlchemy's SQLite DATETIME stores UTC: `2026-11-25 12:00:00.000000`."""
    return datetime.fromisoformat(text).astimezone(UTC).isoformat(" ", "microseconds")[:26]


def pg_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def rows_of(
    page: list[dict[str, Any]], when: Any, to_time: Callable[[str], Any]
) -> Iterator[tuple[Any, ...]]:
    """The page's items as the driver binds them, in COLUMNS' order."""
    for item in page:
        values = []
        for name, is_time in GETTERS:
            value = item.get(name)
            values.append(to_time(value) if is_time and value is not None else value)
        final = item.get("status") == "completed" and item.get("cost_in_dollars") is not None
        yield (*values, json.dumps(item), when, when, final)


class Api:
    """One keep-alive connection to the space, Basic auth, one GET at a time."""

    def __init__(self, space: str, project: str, token: str) -> None:
        url = urlsplit(space)
        assert url.hostname is not None
        self.conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
        auth = base64.b64encode(f"{project}:{token}".encode()).decode()
        self.headers = {"Authorization": f"Basic {auth}", "Accept": "application/json"}

    def get(self, target: str) -> dict[str, Any]:
        if target.startswith(("http://", "https://")):
            split = urlsplit(target)
            target = split.path + (f"?{split.query}" if split.query else "")
        self.conn.request("GET", target, headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"firstsync_floor: GET {target} -> {response.status}")
        page: dict[str, Any] = json.loads(body)
        return page

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        target: str | None = LIST
        while target:
            page = self.get(target)
            yield page.get("data") or []
            target = (page.get("links") or {}).get("next")


def sqlite_writer(url: str) -> tuple[Callable[[list[dict[str, Any]]], int], Callable[[], None]]:
    import sqlite3

    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    statement = (
        f"INSERT INTO room_sessions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    )
    when = sqlite_time(datetime.now(UTC).isoformat())

    def write(page: list[dict[str, Any]]) -> int:
        conn.execute("BEGIN")
        conn.executemany(statement, rows_of(page, when, sqlite_time))
        conn.execute("COMMIT")
        return len(page)

    return write, conn.close


def pg_writer(url: str) -> tuple[Callable[[list[dict[str, Any]]], int], Callable[[], None]]:
    import psycopg

    conn = psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True
    )
    statement = f"COPY room_sessions ({', '.join(COLUMNS)}) FROM STDIN"
    when = datetime.now(UTC)

    def write(page: list[dict[str, Any]]) -> int:
        with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows_of(page, when, pg_time):
                copy.write_row(row)
        return len(page)

    return write, conn.close


def main() -> int:
    env = os.environ
    api = Api(env["SIGNALWIRE_SPACE"], env["SIGNALWIRE_PROJECT_ID"], env["SIGNALWIRE_API_TOKEN"])
    url = env["DATABASE_URL"]
    write, close = pg_writer(url) if url.startswith("postgresql") else sqlite_writer(url)
    started = time.monotonic()
    stored = pages = 0
    try:
        for page in api.pages():
            pages += 1
            stored += write(page)
    finally:
        close()
    summary = {"listed": stored, "stored": stored, "pages": pages}
    print(json.dumps({**summary, "elapsed_s": round(time.monotonic() - started, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
