"""The local stand-in of SignalWire's API behaves as the vendor documents, over real HTTP."""

from __future__ import annotations

import email.utils
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from etl.fake_api import (
    LIST_ONLY_FIELDS,
    LIST_PATH,
    FakeSignalWire,
    by_id_view,
    generate_sessions,
    parse_fault,
)

ROOT = Path(__file__).resolve().parents[1]
AUTH = ("test-project", "test-token")
REFERENCE_FIELDS = frozenset(
    {
        "id", "room_id", "name", "display_name", "max_members", "quality", "fps", "join_from",
        "join_until", "remove_at", "remove_after_seconds_elapsed", "layout", "record_on_start",
        "tone_on_entry_and_exit", "room_join_video_off", "user_join_video_off", "locked",
        "start_time", "end_time", "duration", "status", "created_at", "updated_at",
        "preview_url", "prioritize_handraise", "sync_audio_video",
    }
)  # fmt: skip
SESSIONS = generate_sessions(120, seed=7)


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def session_url(session_id: str) -> str:
    return f"{LIST_PATH}/{session_id}"


@pytest.fixture
def fake() -> Iterator[FakeSignalWire]:
    with FakeSignalWire(SESSIONS) as server:
        yield server


def make_client(server: FakeSignalWire, **kwargs: Any) -> httpx.Client:
    kwargs.setdefault("auth", AUTH)
    kwargs.setdefault("timeout", 5.0)
    return httpx.Client(base_url=server.base_url, trust_env=False, **kwargs)


@pytest.fixture
def client(fake: FakeSignalWire) -> Iterator[httpx.Client]:
    with make_client(fake) as http:
        yield http


def walk(http: httpx.Client, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Follow links.next from the first page; return every item and the number of pages."""
    response = http.get(LIST_PATH, params=params)
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["data"])
        pages += 1
        next_link = body["links"].get("next")
        if next_link is None:
            return items, pages
        response = http.get(next_link)


# --------------------------------------------------------------------------- generated data


def test_generate_sessions_is_deterministic() -> None:
    assert generate_sessions(50, seed=3) == generate_sessions(50, seed=3)
    assert generate_sessions(50, seed=3) != generate_sessions(50, seed=4)
    now = datetime(2025, 3, 11, tzinfo=UTC)
    assert generate_sessions(5, now=now) == generate_sessions(5, now=now)


def test_generate_sessions_shape_and_mix() -> None:
    sessions = generate_sessions(200, seed=1)
    assert all(set(s) == REFERENCE_FIELDS | set(LIST_ONLY_FIELDS) for s in sessions)
    assert len({s["id"] for s in sessions}) == 200
    statuses = [s["status"] for s in sessions]
    assert 150 <= statuses.count("completed") <= 185
    assert 10 <= statuses.count("in-progress") <= 30
    assert 1 <= statuses.count(None) <= 15
    assert any(s["room_id"] is None for s in sessions)
    assert {s["quality"] for s in sessions} == {"720p", "1080p"}
    assert {s["fps"] for s in sessions} == {20, 30}
    stamps = [s["created_at"] for s in sessions]
    assert any("." in t for t in stamps) and any("." not in t for t in stamps)
    assert all(t.endswith("Z") for t in stamps)


def test_generate_sessions_is_internally_consistent() -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    sessions = generate_sessions(300, seed=2)
    created = [parse_ts(s["created_at"]) for s in sessions]
    assert created == sorted(created, reverse=True)
    for session, made in zip(sessions, created, strict=True):
        assert now - timedelta(days=30) <= made <= now
        assert parse_ts(session["updated_at"]) >= made
        if session["status"] == "in-progress":
            assert session["end_time"] is None and session["duration"] is None
            assert session["cost_in_dollars"] == 0.0  # a running figure, never null
        else:
            start, end = parse_ts(session["start_time"]), parse_ts(session["end_time"])
            assert session["duration"] == int((end - start).total_seconds())
            assert isinstance(session["cost_in_dollars"], float)


def test_small_samples_hold_every_kind() -> None:
    statuses = {s["status"] for s in generate_sessions(10)}
    assert statuses == {"completed", "in-progress", None}


# --------------------------------------------------------------------------- auth and by id


@pytest.mark.parametrize(
    "auth", [None, ("test-project", "wrong"), ("other", "test-token")], ids=str
)
def test_bad_or_missing_auth_is_401(fake: FakeSignalWire, auth: tuple[str, str] | None) -> None:
    with make_client(fake, auth=auth) as http:
        for path in (LIST_PATH, session_url(SESSIONS[0]["id"]), "/elsewhere"):
            response = http.get(path)
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/json"
            assert response.json() == {"error": "Unauthorized"}


def test_get_by_id_omits_list_only_fields(client: httpx.Client) -> None:
    session = SESSIONS[5]
    response = client.get(session_url(session["id"]))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == by_id_view(session)
    assert set(response.json()) == REFERENCE_FIELDS


def test_list_items_carry_list_only_fields(client: httpx.Client) -> None:
    data = client.get(LIST_PATH).json()["data"]
    assert all(set(item) == REFERENCE_FIELDS | set(LIST_ONLY_FIELDS) for item in data)


def test_unknown_id_and_unknown_path_are_404(client: httpx.Client) -> None:
    for path in (session_url("7d1f5ae2-4cbb-4c38-b1f1-6f5b0d6c8d11"), "/api/other", "/"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": "Not Found"}


def test_methods_other_than_get_are_405(client: httpx.Client) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "PURGE"):
        response = client.request(method, LIST_PATH, content=b'{"x": 1}')
        assert response.status_code == 405
        assert response.json() == {"error": "Method Not Allowed"}
    head = client.head(LIST_PATH)
    assert (head.status_code, head.content) == (405, b"")
    assert client.get(LIST_PATH).status_code == 200


def test_serving_reflects_direct_mutation(fake: FakeSignalWire, client: httpx.Client) -> None:
    session_id = next(s["id"] for s in SESSIONS if s["status"] == "in-progress")
    fake.sessions[session_id].update(status="completed", duration=60)
    body = client.get(session_url(session_id)).json()
    assert (body["status"], body["duration"]) == ("completed", 60)
    assert SESSIONS[[s["id"] for s in SESSIONS].index(session_id)]["status"] == "in-progress"
    extra = {**SESSIONS[0], "id": "0b7c2d1e-95a3-4f4e-8a55-3a3f6d1c0e42"}
    fake.add_session(extra)
    assert client.get(session_url(extra["id"])).json()["id"] == extra["id"]


# --------------------------------------------------------------------------- paging


@pytest.mark.parametrize("absolute", [False, True])
def test_paging_walks_every_session_once(absolute: bool) -> None:
    with FakeSignalWire(SESSIONS, absolute_links=absolute) as server, make_client(server) as http:
        items, pages = walk(http, {"page_size": 25})
        first = http.get(LIST_PATH, params={"page_size": 25}).json()["links"]
    assert [item["id"] for item in items] == [s["id"] for s in SESSIONS]
    assert pages == 5
    assert first["next"].startswith(server.base_url if absolute else LIST_PATH + "?")
    assert "page_number=1" in first["next"] and "page_token=PA" in first["next"]
    assert "prev" not in first


def test_default_page_size_is_50_and_last_page_has_no_next(client: httpx.Client) -> None:
    body = client.get(LIST_PATH).json()
    assert len(body["data"]) == 50
    body = client.get(body["links"]["next"]).json()
    body = client.get(body["links"]["next"]).json()
    assert len(body["data"]) == 20
    assert "next" not in body["links"]
    assert "prev" in body["links"]
    assert len(client.get(body["links"]["prev"]).json()["data"]) == 50


def test_filters_are_exact_and_carried_by_next(client: httpx.Client) -> None:
    room_id = next(s["room_id"] for s in SESSIONS if s["room_id"])
    for params, check in (
        ({"status": "in-progress"}, lambda s: s["status"] == "in-progress"),
        ({"room_id": room_id}, lambda s: s["room_id"] == room_id),
        ({"room_name": "standup"}, lambda s: s["name"] == "standup"),
        ({"status": "in-prog"}, lambda s: False),
    ):
        items, _ = walk(client, {**params, "page_size": 3})
        assert [i["id"] for i in items] == [s["id"] for s in SESSIONS if check(s)], params


def test_shuffled_list_still_pages_exactly() -> None:
    with FakeSignalWire(SESSIONS, shuffle_list=True) as server, make_client(server) as http:
        items, _ = walk(http, {"page_size": 7})
    ids = [item["id"] for item in items]
    assert sorted(ids) == sorted(s["id"] for s in SESSIONS)
    assert ids != [s["id"] for s in SESSIONS]


@pytest.mark.parametrize(
    ("params", "attribute"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 1001}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"page_number": 1}, "page_token"),
        ({"page_number": -1}, "page_number"),
        ({"page_token": "PAnot-a-token"}, "page_token"),
    ],
)
def test_bad_paging_is_422(client: httpx.Client, params: dict[str, Any], attribute: str) -> None:
    response = client.get(LIST_PATH, params=params)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["type"] == "validation_error"
    assert error["attribute"] == attribute
    assert {"code", "message", "url"} <= set(error)


def test_page_size_bounds_are_inclusive(client: httpx.Client) -> None:
    assert len(client.get(LIST_PATH, params={"page_size": 1}).json()["data"]) == 1
    assert len(client.get(LIST_PATH, params={"page_size": 1000}).json()["data"]) == 120


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("word", ["500", "502", "503", "504", "401", "403", "429"])
def test_status_faults(fake: FakeSignalWire, client: httpx.Client, word: str) -> None:
    session_id = SESSIONS[0]["id"]
    fake.script(session_id, word)
    response = client.get(session_url(session_id))
    assert response.status_code == int(word)
    assert "error" in response.json()
    assert "retry-after" not in response.headers
    assert client.get(session_url(session_id)).status_code == 200


def test_422_fault_has_errors_shape(fake: FakeSignalWire, client: httpx.Client) -> None:
    fake.script_list("422")
    response = client.get(LIST_PATH)
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "validation_error"


def test_faults_are_consumed_in_order(fake: FakeSignalWire, client: httpx.Client) -> None:
    session_id, other = SESSIONS[1]["id"], SESSIONS[2]["id"]
    fake.script(session_id, "503", "429:2", "500")
    assert client.get(session_url(other)).status_code == 200
    codes = [client.get(session_url(session_id)).status_code for _ in range(4)]
    assert codes == [503, 429, 500, 200]


def test_retry_after_seconds(fake: FakeSignalWire, client: httpx.Client) -> None:
    fake.script(SESSIONS[0]["id"], "429:7", "429:0", "429:-3")
    values = [client.get(session_url(SESSIONS[0]["id"])).headers["retry-after"] for _ in "abc"]
    assert values == ["7", "0", "-3"]


def test_retry_after_http_date(fake: FakeSignalWire, client: httpx.Client) -> None:
    fake.script(SESSIONS[0]["id"], "429:date:30")
    response = client.get(session_url(SESSIONS[0]["id"]))
    assert response.status_code == 429
    value = response.headers["retry-after"]
    assert value.endswith(" GMT")
    ahead = email.utils.parsedate_to_datetime(value) - datetime.now(UTC)
    assert timedelta(seconds=27) <= ahead <= timedelta(seconds=31)


@pytest.mark.parametrize("word", ["reset", "truncate"])
def test_transport_faults(fake: FakeSignalWire, client: httpx.Client, word: str) -> None:
    fake.script(SESSIONS[0]["id"], word)
    fake.script_list(word)
    with pytest.raises(httpx.TransportError):
        client.get(session_url(SESSIONS[0]["id"]))
    with pytest.raises(httpx.TransportError):
        client.get(LIST_PATH)
    assert client.get(session_url(SESSIONS[0]["id"])).status_code == 200


def test_badjson(fake: FakeSignalWire, client: httpx.Client) -> None:
    fake.script(SESSIONS[0]["id"], "badjson")
    response = client.get(session_url(SESSIONS[0]["id"]))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_mismatch(fake: FakeSignalWire, client: httpx.Client) -> None:
    session_id = SESSIONS[0]["id"]
    fake.script(session_id, "mismatch")
    body = client.get(session_url(session_id)).json()
    assert body["id"] != session_id
    assert set(body) == REFERENCE_FIELDS
    with pytest.raises(ValueError):
        fake.script_list("mismatch")


def test_badtypes(fake: FakeSignalWire, client: httpx.Client) -> None:
    session_id = SESSIONS[0]["id"]
    fake.script(session_id, "badtypes")
    fake.script_list("badtypes")
    body = client.get(session_url(session_id)).json()
    assert body["id"] == session_id
    assert (body["duration"], body["locked"]) == ("long", "no")
    first = client.get(LIST_PATH).json()["data"][0]
    assert (first["id"], first["duration"], first["locked"]) == (SESSIONS[0]["id"], "long", "no")


def test_faults_on_unknown_ids(fake: FakeSignalWire, client: httpx.Client) -> None:
    unknown = "5f0a4c3e-0000-4000-8000-000000000000"
    fake.script(unknown, "badtypes", "500")
    assert client.get(session_url(unknown)).json()["id"] == unknown
    assert client.get(session_url(unknown)).status_code == 500
    assert client.get(session_url(unknown)).status_code == 404


def test_slow_fault_delays_then_serves(fake: FakeSignalWire, client: httpx.Client) -> None:
    fake.script(SESSIONS[0]["id"], "slow:0.5")
    with pytest.raises(httpx.ReadTimeout):
        client.get(session_url(SESSIONS[0]["id"]), timeout=0.1)
    fake.script(SESSIONS[0]["id"], "slow:0.2")
    assert client.get(session_url(SESSIONS[0]["id"])).status_code == 200


@pytest.mark.parametrize("word", ["418", "slow", "slow:-1", "429:", "429:date:x", "boom"])
def test_unknown_fault_words_are_refused(word: str) -> None:
    with pytest.raises(ValueError):
        parse_fault(word)


# --------------------------------------------------------------------------- stats and lifecycle


def test_request_counters(fake: FakeSignalWire, client: httpx.Client) -> None:
    client.get(LIST_PATH, params={"page_size": 5})
    client.get(LIST_PATH)
    client.get(session_url(SESSIONS[0]["id"]))
    client.get(session_url(SESSIONS[0]["id"]))
    assert fake.requests[LIST_PATH] == 2
    assert fake.requests[session_url(SESSIONS[0]["id"])] == 2
    assert fake.total_requests == 4
    assert fake.max_in_flight == 1
    deadline = time.monotonic() + 5  # the last handler may still be closing its request
    while fake.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    fake.reset_stats()
    assert (fake.total_requests, fake.max_in_flight, sum(fake.requests.values())) == (0, 0, 0)


def test_max_in_flight_and_latency() -> None:
    with FakeSignalWire(SESSIONS, latency=2.0) as server, make_client(server) as http:
        ids = [s["id"] for s in SESSIONS[:5]]
        with ThreadPoolExecutor(max_workers=5) as pool:
            codes = list(pool.map(lambda i: http.get(session_url(i)).status_code, ids))
        assert codes == [200] * 5
        assert server.max_in_flight == 5  # the 2 s latency held all five in flight at once
        with pytest.raises(httpx.ReadTimeout):
            http.get(session_url(ids[0]), timeout=0.1)


def test_stop_releases_the_port_and_is_idempotent() -> None:
    server = FakeSignalWire(SESSIONS).start()
    http = make_client(server)
    assert http.get(LIST_PATH).status_code == 200
    server.stop()
    server.stop()
    with pytest.raises(httpx.TransportError):
        http.get(LIST_PATH)
    http.close()
    with pytest.raises(RuntimeError):
        FakeSignalWire().base_url  # noqa: B018 - the property raises before start


def test_non_loopback_hosts_are_refused() -> None:
    with pytest.raises(ValueError):
        FakeSignalWire(host="0.0.0.0")


def test_standalone_main(tmp_path: Path) -> None:
    ids_file = tmp_path / "ids.txt"
    command = [sys.executable, "-m", "etl.fake_api", "--port", "0", "--sessions", "30"]
    command += ["--project-id", "p", "--token", "t", "--ids-file", str(ids_file)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            ids = ids_file.read_text().split()
            assert ids == [s["id"] for s in generate_sessions(30)]
            with httpx.Client(base_url=base_url, auth=("p", "t"), trust_env=False) as http:
                assert http.get(session_url(ids[0])).json()["id"] == ids[0]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
