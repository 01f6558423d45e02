"""Roomsync as it was before issue 21: each lane on httpx's own transport (httpcore), for the
side-by-side measure in bench/run.py (`--only transport`). Same command line as `roomsync`.

    python bench/roomsync_httpx.py backfill ids.txt --json
"""

from __future__ import annotations

import ssl

import httpx

import etl.signalwire
from etl.cli import main


def _httpx_lane(ssl_context: ssl.SSLContext, one_read: int = 0) -> httpx.AsyncHTTPTransport:
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncHTTPTransport(verify=ssl_context, limits=one)


etl.signalwire.Http11Transport = _httpx_lane  # type: ignore[assignment,misc]

if __name__ == "__main__":
    main()
