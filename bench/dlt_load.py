"""Baseline (c): dlt loading the same ids with its `merge` disposition into SQLite.

A `@dlt.resource` streams the ids from the file; a parallelized `@dlt.transformer` fetches each
one with dlt's own requests helper (retries included) in `DLT_WORKERS` threads, and dlt merges
the rows on `id` into the sqlalchemy destination (a SQLite file). The pipeline's working
directory is a temporary one; telemetry is off. Prints one JSON summary line.

    DLT_WORKERS=20 python bench/dlt_load.py ids.txt
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

# Before dlt is imported: no telemetry (the only traffic is to the API on loopback), and the
# extract thread pool as wide as roomsync's concurrency.
WORKERS = os.environ.get("DLT_WORKERS", "20")
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
os.environ["EXTRACT__WORKERS"] = WORKERS
os.environ["EXTRACT__MAX_PARALLEL_ITEMS"] = WORKERS

import dlt  # noqa: E402
from dlt.sources.helpers.requests import Client  # noqa: E402

BASE_URL = os.environ["SIGNALWIRE_SPACE"]
AUTH = (os.environ["SIGNALWIRE_PROJECT_ID"], os.environ["SIGNALWIRE_API_TOKEN"])
http = Client(raise_for_status=False, max_connections=int(WORKERS))
counts = {"requested": 0, "not_found": 0, "failed": 0}
counts_lock = threading.Lock()


@dlt.resource(selected=False)
def session_ids(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield line.strip()


@dlt.transformer(
    table_name="room_sessions",
    write_disposition="merge",
    primary_key="id",
    parallelized=True,
)
def room_session(session_id: str) -> Any:
    """One id -> its body (a 404 yields nothing)."""
    response = http.get(f"{BASE_URL}/api/video/room_sessions/{session_id}", auth=AUTH)
    outcome = {200: None, 404: "not_found"}.get(response.status_code, "failed")
    with counts_lock:
        counts["requested"] += 1
        if outcome is not None:
            counts[outcome] += 1
    return response.json() if outcome is None else None


def main(path: str) -> int:
    with tempfile.TemporaryDirectory(prefix="dlt-bench-") as work:
        pipeline = dlt.pipeline(
            pipeline_name="roomsync_bench",
            pipelines_dir=work,
            destination=dlt.destinations.sqlalchemy(credentials=os.environ["DATABASE_URL"]),
            dataset_name="main",
        )
        started = time.monotonic()
        info = pipeline.run(session_ids(path) | room_session)
        elapsed = time.monotonic() - started
        info.raise_on_failed_jobs()
    stored = counts["requested"] - counts["not_found"] - counts["failed"]
    print(json.dumps({**counts, "stored": stored, "elapsed_s": round(elapsed, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
