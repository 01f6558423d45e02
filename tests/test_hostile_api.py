"""The hostile stand-in does what it claims, so a broken test server cannot make product tests
pass: plain sockets and httpx against tests/hostile_api.py."""

from __future__ import annotations

import base64
import json
import socket
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import PROJECT, TOKEN
from hostile_api import (
    BY_ID,
    LIST,
    LIST_PATH,
    MIB,
    Bomb,
    Drip,
    Endless,
    EndlessPages,
    HostileAPI,
    Oversized,
    Raw,
    Status,
    compression_bomb,
    http_date,
    nested_array,
    session_body,
)

from etl.fake_api import LIST_ONLY_FIELDS, generate_sessions

pytestmark = pytest.mark.timeout(30)
AUTH = "Basic " + base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode()


def client(api: HostileAPI) -> httpx.Client:
    return httpx.Client(base_url=api.base_url, auth=(PROJECT, TOKEN), timeout=10)


def raw_get(api: HostileAPI, path: str) -> socket.socket:
    """Send a GET by hand and return the socket, to read the answer byte by byte."""
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        assert chunk, "the server hung up before the end of the head"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def test_normal_mode_serves_sessions_by_id_and_a_newest_first_list(
    hostile_api: HostileAPI,
) -> None:
    sessions = generate_sessions(25, seed=5)
    hostile_api.set_sessions(sessions)
    with client(hostile_api) as http:
        one = http.get(f"{LIST_PATH}/{sessions[3]['id']}")
        assert one.status_code == 200
        assert not set(LIST_ONLY_FIELDS) & set(one.json())
        assert one.json()["id"] == sessions[3]["id"]
        assert http.get(f"{LIST_PATH}/{generate_sessions(1, seed=6)[0]['id']}").status_code == 404
        listed: list[dict[str, Any]] = []
        page = http.get(LIST_PATH, params={"page_size": 10}).json()
        while True:
            listed.extend(page["data"])
            if "next" not in page["links"]:
                break
            page = http.get(page["links"]["next"]).json()
    assert [s["id"] for s in listed] == [s["id"] for s in sessions]
    assert all("cost_in_dollars" in s for s in listed)
    created = [s["created_at"] for s in listed]
    assert created == sorted(created, reverse=True)
    assert len(hostile_api.requests_to(LIST)) == 3
    assert len(hostile_api.requests_to(BY_ID)) == 2


def test_basic_auth_is_checked_and_every_request_is_recorded(hostile_api: HostileAPI) -> None:
    with httpx.Client(base_url=hostile_api.base_url, auth=(PROJECT, "wrong"), timeout=10) as bad:
        assert bad.get(LIST_PATH).status_code == 401
    with httpx.Client(base_url=hostile_api.base_url, timeout=10) as anonymous:
        assert anonymous.get(LIST_PATH).status_code == 401
    with client(hostile_api) as http:
        assert http.get(LIST_PATH, headers={"X-Probe": "1"}).status_code == 200
    assert [r.authorised for r in hostile_api.requests] == [False, False, True]
    assert hostile_api.requests[-1].headers["x-probe"] == "1"
    assert hostile_api.requests[0].at <= hostile_api.requests[-1].at
    assert hostile_api.requests_after(hostile_api.requests[-1].at) == []


def test_429_and_503_carry_retry_after_and_queues_are_consumed_in_order(
    hostile_api: HostileAPI,
) -> None:
    session = generate_sessions(1, seed=7)[0]
    hostile_api.set_sessions([session])
    later = http_date(datetime.now(UTC) + timedelta(seconds=60))
    hostile_api.queue(session["id"], Status(429, "60"), Status(429, later), Status(503))
    with client(hostile_api) as http:
        answers = [http.get(f"{LIST_PATH}/{session['id']}") for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 429, 503, 200]
    assert answers[0].headers["Retry-After"] == "60"
    assert answers[1].headers["Retry-After"] == later


def test_a_drip_sends_one_byte_at_a_time_and_gives_up_by_itself() -> None:
    session = generate_sessions(1, seed=8)[0]
    body = session_body(session)
    with HostileAPI([session], project_id=PROJECT, token=TOKEN, max_seconds=1.0) as api:
        api.always(session["id"], Drip(body, interval=0.05))
        sock = raw_get(api, f"{LIST_PATH}/{session['id']}")
        head, rest = read_head(sock)
        assert f"Content-Length: {len(body)}".encode() in head
        received = [rest] if rest else []
        while chunk := sock.recv(65536):
            received.append(chunk)
        sock.close()
    total = sum(len(chunk) for chunk in received)
    # One byte per 0.05 s for the 1 s bound: at most ~21 bytes of a longer body, then a hang-up.
    assert 3 <= total <= 22 < len(body)


def test_an_endless_chunked_body_never_sends_its_last_chunk_and_stops_at_the_byte_cap() -> None:
    with HostileAPI(project_id=PROJECT, token=TOKEN, max_bytes=2 * MIB) as api:
        api.always(BY_ID, Endless())
        sock = raw_get(api, f"{LIST_PATH}/whatever")
        head, rest = read_head(sock)
        total = len(rest)
        tail = rest[-16:]
        while chunk := sock.recv(1 << 16):
            total += len(chunk)
            tail = (tail + chunk)[-16:]
        sock.close()
    assert b"Transfer-Encoding: chunked" in head
    assert 2 * MIB <= total < 3 * MIB
    assert not tail.endswith(b"0\r\n\r\n")  # no terminating chunk


def test_an_oversized_body_promises_and_sends_64_mib(hostile_api: HostileAPI) -> None:
    session = generate_sessions(1, seed=9)[0]
    hostile_api.always(session["id"], Oversized(session_body(session)))
    with (
        client(hostile_api) as http,
        http.stream("GET", f"{LIST_PATH}/{session['id']}") as response,
    ):
        assert response.headers["Content-Length"] == str(64 * MIB)
        total = sum(len(chunk) for chunk in response.iter_raw())
    assert total == 64 * MIB


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compression_bombs_are_small_on_the_wire_and_inflate_far(
    hostile_api: HostileAPI, encoding: str
) -> None:
    session = generate_sessions(1, seed=10)[0]
    body = session_body(session)
    gigabyte = compression_bomb(body, encoding, 1 << 30)
    assert len(gigabyte) < 2 * MIB
    wbits = 31 if encoding == "gzip" else 15
    inflater = zlib.decompressobj(wbits)
    assert len(inflater.decompress(gigabyte[: 64 * 1024], 32 * MIB)) == 32 * MIB
    # A small one, inflated in full by httpx: whitespace, then the session (valid JSON).
    hostile_api.always(session["id"], Bomb(body, encoding, inflated=8 * MIB))
    with client(hostile_api) as http:
        response = http.get(f"{LIST_PATH}/{session['id']}")
    assert response.headers["Content-Encoding"] == encoding
    assert int(response.headers["Content-Length"]) < 64 * 1024
    assert len(response.content) == 8 * MIB + len(body)
    assert response.json()["id"] == session["id"]


def test_raw_bodies_reach_the_client_byte_for_byte(hostile_api: HostileAPI) -> None:
    session = generate_sessions(1, seed=11)[0]
    path = f"{LIST_PATH}/{session['id']}"
    surrogate = session_body(session, name='"\\ud800"')
    huge = session_body(session, extra="1e999")
    nested = session_body(session, extra=nested_array(5000))
    invalid_utf8 = surrogate.replace(b'"\\ud800"', b'"\xff\xfe"')
    hostile_api.queue(session["id"], Raw(surrogate), Raw(huge), Raw(nested), Raw(invalid_utf8))
    with client(hostile_api) as http:
        bodies = [http.get(path).content for _ in range(4)]
    assert bodies == [surrogate, huge, nested, invalid_utf8]
    assert json.loads(bodies[0])["name"] == "\ud800"
    assert json.loads(bodies[1])["extra"] == float("inf")
    with pytest.raises(RecursionError):
        json.loads(bodies[2])
    with pytest.raises(UnicodeDecodeError):
        bodies[3].decode("utf-8")


def test_endless_pages_always_offer_a_fresh_next_link(hostile_api: HostileAPI) -> None:
    hostile_api.always(LIST, EndlessPages(lambda n: []))
    links = set()
    with client(hostile_api) as http:
        page = http.get(LIST_PATH).json()
        for _ in range(30):
            assert page["data"] == []
            links.add(page["links"]["next"])
            page = http.get(page["links"]["next"]).json()
    assert len(links) == 30


def test_the_date_header_is_the_servers_choice(hostile_api: HostileAPI) -> None:
    skewed = http_date(datetime(2999, 1, 1, tzinfo=UTC))
    hostile_api.queue(LIST, Raw(b'{"links": {}, "data": []}', headers=(("Date", skewed),)))
    with client(hostile_api) as http:
        assert http.get(LIST_PATH).headers["Date"] == skewed


def test_stop_hangs_up_a_response_in_progress() -> None:
    api = HostileAPI(project_id=PROJECT, token=TOKEN, max_seconds=60).start()
    api.always(BY_ID, Drip(b"x" * 1000, interval=0.05))
    sock = raw_get(api, f"{LIST_PATH}/x")
    read_head(sock)
    api.stop()
    sock.settimeout(5)
    received = b""
    while chunk := sock.recv(1000):  # ends at the hang-up, long before the 60 s bound
        received += chunk
    sock.close()
    assert len(received) < 1000
