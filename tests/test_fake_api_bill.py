"""The stand-in serves members, recordings, rooms and video logs as the vendor documents them,
consistent with its sessions, over real HTTP; tests can change that state as the vendor would."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from etl.bill_records import parse_member, parse_recording, parse_room, parse_video_log
from etl.errors import PayloadError
from etl.fake_api import (
    LIST_PATH,
    LOGS_PATH,
    RECORDING_URI_PREFIX,
    RECORDINGS_PATH,
    ROOMS_PATH,
    FakeSignalWire,
    generate_account,
    generate_sessions,
)
from etl.fake_api.data import RECORDING_BYTES_PER_SECOND

ROOT = Path(__file__).resolve().parents[1]
AUTH = ("test-project", "test-token")
ACCOUNT = generate_account(150, seed=11)
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def members_path(session_id: str) -> str:
    return f"{LIST_PATH}/{session_id}/members"


def recordings_path(session_id: str) -> str:
    return f"{LIST_PATH}/{session_id}/recordings"


@pytest.fixture
def fake() -> Iterator[FakeSignalWire]:
    with FakeSignalWire(account=ACCOUNT, clock=lambda: 1_800_000_000.0) as server:
        yield server


@pytest.fixture
def client(fake: FakeSignalWire) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, auth=AUTH, trust_env=False, timeout=5.0) as http:
        yield http


def walk(http: httpx.Client, path: str, params: dict[str, Any] | None = None) -> list[Any]:
    """Every item of a list, following links.next (bounded)."""
    response = http.get(path, params=params)
    items: list[Any] = []
    for _ in range(10_000):
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"links", "data"}
        items.extend(body["data"])
        next_link = body["links"].get("next")
        if next_link is None:
            return items
        response = http.get(next_link)
    raise AssertionError("the walk did not end")


def amount(value: Any) -> float:
    return float(value)


def sessions_by_status(status: str | None) -> list[dict[str, Any]]:
    return [s for s in ACCOUNT.sessions if s["status"] == status]


# --------------------------------------------------------------------------- generated account


def test_account_is_deterministic_and_keeps_the_sessions() -> None:
    again = generate_account(150, seed=11)
    assert again == ACCOUNT
    assert generate_account(150, seed=12) != ACCOUNT
    plain = generate_sessions(150, seed=11)
    assert [s["id"] for s in ACCOUNT.sessions] == [s["id"] for s in plain]
    for session, original in zip(ACCOUNT.sessions, plain, strict=True):
        changed = {k for k in session if session[k] != original[k]}
        assert changed <= {"cost_in_dollars", "room_id"}


def test_members_belong_to_their_sessions_and_durations_match() -> None:
    sessions = {s["id"]: s for s in ACCOUNT.sessions}
    present = 0
    for session_id, members in ACCOUNT.members.items():
        session = sessions[session_id]
        assert members, "every session has someone in it"
        start = ts(session["start_time"])
        for member in members:
            assert member["room_session_id"] == session_id
            join = ts(member["join_time"])
            assert join >= start
            if member["leave_time"] is None:
                assert session["status"] == "in-progress"
                assert member["duration"] is None and member["cost_in_dollars"] == 0.0
                present += 1
                continue
            leave = ts(member["leave_time"])
            assert member["duration"] == int((leave - join).total_seconds()) >= 0
            if session["end_time"] is not None:
                assert leave <= ts(session["end_time"])
        if session["status"] != "in-progress":
            total = sum(m["cost_in_dollars"] for m in members)
            assert math.isclose(session["cost_in_dollars"], total, abs_tol=1e-6)
    assert present > 0  # live sessions have members still in the room
    names = [m["name"] for ms in ACCOUNT.members.values() for m in ms]
    ids = [m["id"] for ms in ACCOUNT.members.values() for m in ms]
    assert len(ids) == len(set(ids)) and len(set(names)) < len(names)  # rejoins: new id, same name


def test_recordings_follow_their_sessions() -> None:
    sessions = {s["id"]: s for s in ACCOUNT.sessions}
    recorded = [r for rs in ACCOUNT.recordings.values() for r in rs]
    assert len({r["room_session_id"] for r in recorded}) >= 10
    assert all("uri" not in r for r in recorded)  # signed per response, never held
    for recording in recorded:
        session = sessions[recording["room_session_id"]]
        if session["status"] == "in-progress":
            assert recording["status"] in ("recording", "paused")
            assert recording["finished_at"] is None and recording["size_in_bytes"] is None
        else:
            assert recording["status"] in ("completed", "processing")
            duration = int(
                (ts(recording["finished_at"]) - ts(recording["started_at"])).total_seconds()
            )
            assert recording["duration"] == duration
            assert ts(recording["finished_at"]) <= ts(session["end_time"])
    assert any(s["record_on_start"] for s in ACCOUNT.sessions if ACCOUNT.recordings[s["id"]])
    big = generate_account(600, seed=3)
    sizes = [r["size_in_bytes"] or 0 for rs in big.recordings.values() for r in rs]
    assert max(sizes) > 2**31  # a long 1080p recording does not fit the spec's int32


def test_every_session_has_a_log_entry_whose_details_sum_to_the_charge() -> None:
    by_session = {}
    for entry in ACCOUNT.logs:
        path = urlsplit(entry["url"]).path
        assert path.startswith(LIST_PATH + "/")
        by_session[path.rpartition("/")[2]] = entry
    assert set(by_session) == {s["id"] for s in ACCOUNT.sessions}
    assert any(e["url"].startswith("https://") for e in ACCOUNT.logs)
    assert any(e["url"].startswith("/") for e in ACCOUNT.logs)
    text_charges = 0
    for session in ACCOUNT.sessions:
        entry = by_session[session["id"]]
        details = entry["charge_details"]
        text_charges += sum(isinstance(d["charge"], str) for d in details)
        assert math.isclose(
            entry["charge"], sum(amount(d["charge"]) for d in details), abs_tol=1e-9
        )
        assert entry["status"] == session["status"]
        if session["status"] == "in-progress":
            assert entry["charge"] == 0.0 and entry["ended_at"] is None
            continue
        recordings = sum(
            r["cost_in_dollars"]
            for r in ACCOUNT.recordings[session["id"]]
            if r["status"] == "completed"
        )
        expected = session["cost_in_dollars"] + recordings
        assert math.isclose(entry["charge"], expected, abs_tol=2e-6)
    assert text_charges > 0  # the conference-logs API's string charges occur
    assert 0 < len(ACCOUNT.discarded_logs) < len(ACCOUNT.logs)


def test_rooms_match_sessions_by_id_or_by_name() -> None:
    rooms = {r["id"]: r for r in ACCOUNT.rooms}
    names = {r["name"] for r in ACCOUNT.rooms}
    by_id = by_name_only = no_room = 0
    for session in ACCOUNT.sessions:
        if session["room_id"] in rooms:
            assert rooms[session["room_id"]]["name"] == session["name"]
            by_id += 1
        elif session["name"] in names:
            by_name_only += 1  # room_id null, or a room deleted and made again under its name
        else:
            assert session["room_id"] is None and session["name"].startswith("adhoc-")
            no_room += 1
    assert by_id > 0 and by_name_only > 0 and no_room > 0
    assert any(s["room_id"] is None and s["name"] in names for s in ACCOUNT.sessions)
    assert any(r["meta"] for r in ACCOUNT.rooms)


# --------------------------------------------------------------------------- served over HTTP


def test_every_served_item_parses_to_a_row(fake: FakeSignalWire, client: httpx.Client) -> None:
    """Whatever the stand-in serves is valid input for etl.bill_records (and the uri goes)."""
    for session in ACCOUNT.sessions[:40]:
        for item in walk(client, members_path(session["id"]), {"page_size": 3}):
            parse_member(item, session["id"])
        for item in walk(client, recordings_path(session["id"])):
            assert "uri" in item
            row = parse_recording(item, session["id"])
            assert "uri" not in row["raw"]
    rooms = walk(client, ROOMS_PATH, {"include_active_session": "true"})
    assert {parse_room(r)["id"] for r in rooms} == set(fake.rooms)
    entries = walk(client, LOGS_PATH, {"include_deleted": "true", "page_size": 40})
    rows = [parse_video_log(e) for e in entries]
    assert {r["id"] for r in rows if r["discarded_at"] is not None} == set(fake.discarded_logs)
    assert {r["room_session_id"] for r in rows if r["discarded_at"] is None} <= set(fake.sessions)


def test_members_page_exactly_like_the_session_list(client: httpx.Client) -> None:
    session_id = max(ACCOUNT.members, key=lambda k: len(ACCOUNT.members[k]))
    expected = ACCOUNT.members[session_id]
    assert len(expected) >= 3
    first = client.get(members_path(session_id), params={"page_size": 2}).json()
    assert first["links"]["next"].startswith(members_path(session_id) + "?")
    assert "page_token=PA" in first["links"]["next"]
    assert walk(client, members_path(session_id), {"page_size": 2}) == expected
    assert walk(client, members_path(session_id)) == expected


def test_page_tokens_belong_to_their_list(client: httpx.Client) -> None:
    session_id = max(ACCOUNT.members, key=lambda k: len(ACCOUNT.members[k]))
    token_link = client.get(members_path(session_id), params={"page_size": 1}).json()["links"][
        "next"
    ]
    token = parse_qs(urlsplit(token_link).query)["page_token"][0]
    response = client.get(LOGS_PATH, params={"page_number": 1, "page_size": 1, "page_token": token})
    assert response.status_code == 422
    assert response.json()["errors"][0]["attribute"] == "page_token"


@pytest.mark.parametrize("params", [{"page_size": 0}, {"page_size": 1001}, {"page_number": 1}])
def test_bad_paging_is_422_everywhere(client: httpx.Client, params: dict[str, Any]) -> None:
    session_id = ACCOUNT.sessions[0]["id"]
    for path in (
        members_path(session_id),
        recordings_path(session_id),
        ROOMS_PATH,
        LOGS_PATH,
        RECORDINGS_PATH,
    ):
        assert client.get(path, params=params).status_code == 422, path


def test_unknown_session_and_unknown_items_are_404(client: httpx.Client) -> None:
    unknown = "5f0a4c3e-0000-4000-8000-000000000000"
    for path in (
        members_path(unknown),
        recordings_path(unknown),
        f"{RECORDINGS_PATH}/{unknown}",
        f"{ROOMS_PATH}/{unknown}",
        f"{LOGS_PATH}/{unknown}",
        f"{LIST_PATH}/{ACCOUNT.sessions[0]['id']}/events",
        f"{LIST_PATH}/{ACCOUNT.sessions[0]['id']}/members/extra",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"error": "Not Found"}


@pytest.mark.parametrize(
    "path", [ROOMS_PATH, LOGS_PATH, RECORDINGS_PATH, members_path(ACCOUNT.sessions[0]["id"])]
)
def test_auth_applies_to_every_endpoint(fake: FakeSignalWire, path: str) -> None:
    with httpx.Client(
        base_url=fake.base_url, auth=("test-project", "nope"), trust_env=False
    ) as http:
        assert http.get(path).status_code == 401


def test_recording_uri_is_signed_temporary_and_only_when_completed(
    fake: FakeSignalWire, client: httpx.Client
) -> None:
    recordings = walk(client, RECORDINGS_PATH, {"page_size": 7})
    assert len(recordings) == sum(len(rs) for rs in ACCOUNT.recordings.values())
    created = [ts(r["created_at"]) for r in recordings]
    assert created == sorted(created, reverse=True)
    completed = [r for r in recordings if r["status"] == "completed"]
    assert completed and all(r["uri"] is None for r in recordings if r["status"] != "completed")
    uri = completed[0]["uri"]
    assert uri.startswith(RECORDING_URI_PREFIX + completed[0]["id"]) and "Signature=" in uri
    assert parse_qs(urlsplit(uri).query)["Expires"] == [str(1_800_000_000 + 900)]
    one = client.get(f"{RECORDINGS_PATH}/{completed[0]['id']}", params={"media_ttl": 60}).json()
    assert parse_qs(urlsplit(one["uri"]).query)["Expires"] == [str(1_800_000_060)]
    assert one["uri"] != uri
    fake.clock = lambda: 1_800_000_500.0
    later = client.get(f"{RECORDINGS_PATH}/{completed[0]['id']}").json()["uri"]
    assert parse_qs(urlsplit(later).query)["Expires"] == [str(1_800_001_400)]
    assert (
        client.get(f"{RECORDINGS_PATH}/{completed[0]['id']}", params={"media_ttl": 0}).status_code
        == 200
    )
    for bad in ("0", "-1", "soon"):
        response = client.get(RECORDINGS_PATH, params={"media_ttl": bad})
        assert (
            response.status_code == 422 and response.json()["errors"][0]["attribute"] == "media_ttl"
        )


def test_session_recordings_carry_media_ttl_across_pages(client: httpx.Client) -> None:
    session_id = max(ACCOUNT.recordings, key=lambda k: len(ACCOUNT.recordings[k]))
    expected = [r["id"] for r in ACCOUNT.recordings[session_id]]
    items = walk(client, recordings_path(session_id), {"page_size": 1, "media_ttl": 30})
    assert [i["id"] for i in items] == expected
    for item in items:
        if item["uri"]:
            assert parse_qs(urlsplit(item["uri"]).query)["Expires"] == [str(1_800_000_030)]


def test_rooms_by_id_by_name_and_with_active_session(
    fake: FakeSignalWire, client: httpx.Client
) -> None:
    listed = walk(client, ROOMS_PATH, {"page_size": 4})
    assert sorted(r["id"] for r in listed) == sorted(fake.rooms)
    assert all("active_session" not in r for r in listed)
    room = ACCOUNT.rooms[0]
    assert client.get(f"{ROOMS_PATH}/{room['id']}").json() == room
    assert client.get(f"{ROOMS_PATH}/{room['name']}").json()["id"] == room["id"]
    live = next(
        s for s in ACCOUNT.sessions if s["status"] == "in-progress" and s["room_id"] in fake.rooms
    )
    with_active = walk(client, ROOMS_PATH, {"include_active_session": "true"})
    active = {r["id"]: r["active_session"]["id"] for r in with_active if "active_session" in r}
    assert live["room_id"] in active
    one = client.get(f"{ROOMS_PATH}/{live['room_id']}", params={"include_active_session": "true"})
    assert one.json()["active_session"]["status"] == "in-progress"
    assert client.get(ROOMS_PATH, params={"include_active_session": "maybe"}).status_code == 422


def test_rooms_date_filters(fake: FakeSignalWire, client: httpx.Client) -> None:
    early, late = next(iter(fake.rooms.values())), list(fake.rooms.values())[1]
    early["join_from"], early["join_until"] = "2026-01-01T00:00:00Z", "2026-01-31T00:00:00Z"
    late["join_from"], late["join_until"] = "2026-06-01T00:00:00Z", "2026-06-30T00:00:00Z"
    after = walk(client, ROOMS_PATH, {"starts_after": "2026-03-01"})
    before = walk(client, ROOMS_PATH, {"ends_before": "2026-03-01T00:00:00Z"})
    assert [r["id"] for r in after] == [late["id"]]
    assert [r["id"] for r in before] == [early["id"]]
    assert client.get(ROOMS_PATH, params={"starts_after": "March"}).status_code == 422


def test_logs_date_filters_and_carried_links(client: httpx.Client) -> None:
    live = [e for e in ACCOUNT.logs if e["id"] not in ACCOUNT.discarded_logs]
    cut = sorted(ts(e["created_at"]) for e in live)[len(live) // 2]
    stamp = cut.isoformat().replace("+00:00", "Z")
    after = walk(client, LOGS_PATH, {"created_after": stamp, "page_size": 5})
    assert {e["id"] for e in after} == {e["id"] for e in live if ts(e["created_at"]) > cut}
    first = client.get(LOGS_PATH, params={"created_after": stamp, "page_size": 5}).json()
    assert "created_after=" in first["links"]["next"]
    before = walk(client, LOGS_PATH, {"created_before": stamp})
    assert {e["id"] for e in before} == {e["id"] for e in live if ts(e["created_at"]) < cut}
    day = cut.date()
    on = walk(client, LOGS_PATH, {"created_on": day.isoformat()})
    assert {e["id"] for e in on} == {e["id"] for e in live if ts(e["created_at"]).date() == day}
    assert on and walk(client, LOGS_PATH, {"created_on": stamp}) == on
    next_day = walk(client, LOGS_PATH, {"created_after": day.isoformat()})
    assert {e["id"] for e in next_day} == {
        e["id"] for e in live if ts(e["created_at"]).date() > day
    }
    created = [ts(e["created_at"]) for e in walk(client, LOGS_PATH)]
    assert created == sorted(created, reverse=True)
    for name in ("created_after", "created_before", "created_on"):
        response = client.get(LOGS_PATH, params={name: "last tuesday"})
        assert response.status_code == 422 and response.json()["errors"][0]["attribute"] == name


def test_deleted_log_entries_only_with_include_deleted(
    fake: FakeSignalWire, client: httpx.Client
) -> None:
    gone = next(iter(fake.discarded_logs))
    default = walk(client, LOGS_PATH, {"page_size": 1000})
    assert gone not in {e["id"] for e in default}
    assert walk(client, LOGS_PATH, {"include_deleted": "false"}) == default
    every = walk(client, LOGS_PATH, {"include_deleted": "true", "page_size": 1000})
    (shown,) = [e for e in every if e["id"] == gone]
    assert shown == {
        "id": gone,
        "discarded_at": fake.discarded_logs[gone],
        "created_at": fake.logs[gone]["created_at"],
    }
    assert len(every) == len(fake.logs)
    assert client.get(f"{LOGS_PATH}/{gone}").status_code == 404
    kept = next(e for e in default)
    assert client.get(f"{LOGS_PATH}/{kept['id']}").json() == kept
    assert client.get(LOGS_PATH, params={"include_deleted": "yes please"}).status_code == 422


# --------------------------------------------------------------------------- test controls


def test_complete_session_settles_members_recordings_and_charge(
    fake: FakeSignalWire, client: httpx.Client
) -> None:
    session = next(s for s in ACCOUNT.sessions if s["status"] == "in-progress")
    session_id = session["id"]
    recording = fake.add_recording(session_id, at=ts(session["start_time"]) + timedelta(seconds=3))
    end = ts(session["start_time"]) + timedelta(hours=2)
    fake.complete_session(session_id, at=end)
    body = client.get(f"{LIST_PATH}/{session_id}").json()
    assert (
        body["status"] == "completed"
        and ts(body["end_time"]) == end
        and ts(body["updated_at"]) >= end
    )
    assert body["duration"] == int((end - ts(body["start_time"])).total_seconds())
    members = walk(client, members_path(session_id))
    assert members and all(m["leave_time"] is not None for m in members)
    for member in members:
        assert member["duration"] == int(
            (ts(member["leave_time"]) - ts(member["join_time"])).total_seconds()
        )
    listed = {s["id"]: s for s in walk(client, LIST_PATH, {"page_size": 1000})}[session_id]
    assert math.isclose(
        listed["cost_in_dollars"], sum(m["cost_in_dollars"] for m in members), abs_tol=1e-6
    )
    recordings = walk(client, recordings_path(session_id))
    assert {r["id"] for r in recordings} >= {recording["id"]}
    assert all(
        r["status"] == "completed" and r["uri"] and r["size_in_bytes"] > 0 for r in recordings
    )
    entry = fake.log_of(session_id)
    assert entry is not None
    served = client.get(f"{LOGS_PATH}/{entry['id']}").json()
    assert served["status"] == "completed" and ts(served["ended_at"]) == end
    total = sum(amount(d["charge"]) for d in served["charge_details"])
    assert math.isclose(served["charge"], total, abs_tol=1e-9) and served["charge"] > 0
    row = parse_video_log(served)
    assert row["room_session_id"] == session_id


def test_members_join_and_leave(fake: FakeSignalWire, client: httpx.Client) -> None:
    session_id = ACCOUNT.sessions[0]["id"]
    joined = T0 + timedelta(minutes=1)
    member = fake.add_member(session_id, name="Late Comer", at=joined)
    served = walk(client, members_path(session_id))[-1]
    assert served == member and served["leave_time"] is None and served["duration"] is None
    fake.leave_member(member["id"], at=joined + timedelta(seconds=90, milliseconds=500))
    served = walk(client, members_path(session_id))[-1]
    assert served["duration"] == 90 and served["leave_time"] == "2026-11-01T00:02:30.500Z"
    assert served["cost_in_dollars"] > 0
    with pytest.raises(KeyError):
        fake.leave_member("7d1f5ae2-4cbb-4c38-b1f1-6f5b0d6c8d11")


def test_recording_processing_then_completed(fake: FakeSignalWire, client: httpx.Client) -> None:
    session = next(s for s in ACCOUNT.sessions if s["status"] == "completed")
    start = ts(session["start_time"])
    recording = fake.add_recording(session["id"], at=start)
    path = f"{RECORDINGS_PATH}/{recording['id']}"
    assert client.get(path).json()["status"] == "recording"
    fake.finish_recording(recording["id"], at=start + timedelta(minutes=100), processing=True)
    body = client.get(path).json()
    assert (body["status"], body["duration"], body["size_in_bytes"], body["uri"]) == (
        "processing",
        6000,
        None,
        None,
    )
    fake.finish_recording(recording["id"])
    body = client.get(path).json()
    assert body["status"] == "completed" and body["duration"] == 6000
    assert body["size_in_bytes"] == 6000 * RECORDING_BYTES_PER_SECOND[session["quality"]]
    assert body["uri"].startswith(RECORDING_URI_PREFIX)


def test_log_entries_deleted_and_restored(fake: FakeSignalWire, client: httpx.Client) -> None:
    entry = fake.make_log(ACCOUNT.sessions[0]["id"], log_id="0b7c2d1e-95a3-4f4e-8a55-3a3f6d1c0e42")
    assert client.get(f"{LOGS_PATH}/{entry['id']}").json() == entry
    fake.delete_log(entry["id"], at=T0)
    shown = [
        e for e in walk(client, LOGS_PATH, {"include_deleted": "true"}) if e["id"] == entry["id"]
    ]
    assert shown == [
        {
            "id": entry["id"],
            "discarded_at": "2026-11-01T00:00:00Z",
            "created_at": entry["created_at"],
        }
    ]
    fake.restore_log(entry["id"])
    assert entry["id"] in {e["id"] for e in walk(client, LOGS_PATH)}
    with pytest.raises(KeyError):
        fake.delete_log("5f0a4c3e-0000-4000-8000-000000000000")


def test_direct_mutation_is_served(fake: FakeSignalWire, client: httpx.Client) -> None:
    room = ACCOUNT.rooms[0]
    fake.rooms[room["id"]]["meta"] = {"cost_centre": "CC-99"}
    assert client.get(f"{ROOMS_PATH}/{room['id']}").json()["meta"] == {"cost_centre": "CC-99"}
    assert ACCOUNT.rooms[0]["meta"] != {"cost_centre": "CC-99"}  # the fake holds copies
    fake.delete_room(room["id"])
    assert client.get(f"{ROOMS_PATH}/{room['id']}").status_code == 404


# --------------------------------------------------------------------------- faults


def test_faults_on_any_path(fake: FakeSignalWire, client: httpx.Client) -> None:
    session_id = next(k for k, v in ACCOUNT.members.items() if len(v) >= 2)
    fake.script_path(members_path(session_id), "500", "429:3", "badtypes", "mismatch")
    assert client.get(members_path(session_id)).status_code == 500
    throttled = client.get(members_path(session_id))
    assert (throttled.status_code, throttled.headers["retry-after"]) == (429, "3")
    broken = client.get(members_path(session_id)).json()["data"]
    assert broken[0]["duration"] == "long" and broken[1] == ACCOUNT.members[session_id][1]
    with pytest.raises(PayloadError, match="field '(duration|join_time)' should be"):
        parse_member(broken[0], session_id)
    mismatched = client.get(members_path(session_id)).json()["data"][0]
    assert mismatched["room_session_id"] != session_id
    with pytest.raises(PayloadError, match="listed under session"):
        parse_member(mismatched, session_id)
    assert client.get(members_path(session_id)).json()["data"] == ACCOUNT.members[session_id]


def test_faults_on_lists_and_bodies_by_id(fake: FakeSignalWire, client: httpx.Client) -> None:
    fake.script_path(LOGS_PATH, "reset", "badtypes")
    with pytest.raises(httpx.TransportError):
        client.get(LOGS_PATH)
    assert client.get(LOGS_PATH).json()["data"][0]["charge"] == "free"
    recording = next(r for rs in ACCOUNT.recordings.values() for r in rs)
    path = f"{RECORDINGS_PATH}/{recording['id']}"
    fake.script_path(path, "mismatch", "badtypes", "truncate")
    assert client.get(path).json()["id"] != recording["id"]
    assert client.get(path).json()["size_in_bytes"] == "big"
    with pytest.raises(httpx.TransportError):
        client.get(path)
    assert client.get(path).json()["id"] == recording["id"]
    fake.script_path(f"{LIST_PATH}/{recording['room_session_id']}", "503")  # same as script(id)
    assert client.get(f"{LIST_PATH}/{recording['room_session_id']}").status_code == 503


@pytest.mark.parametrize(
    ("path", "word"),
    [
        (LOGS_PATH, "mismatch"),
        (ROOMS_PATH, "mismatch"),
        ("/api/video/other", "500"),
        (LOGS_PATH, "boom"),
    ],
)
def test_script_path_refuses_what_cannot_apply(fake: FakeSignalWire, path: str, word: str) -> None:
    with pytest.raises(ValueError):
        fake.script_path(path, word)


def test_a_fake_without_an_account_serves_empty_details() -> None:
    sessions = generate_sessions(3, seed=5)
    with (
        FakeSignalWire(sessions) as server,
        httpx.Client(base_url=server.base_url, auth=AUTH, trust_env=False) as http,
    ):
        assert walk(http, members_path(sessions[0]["id"])) == []
        assert walk(http, recordings_path(sessions[0]["id"])) == []
        assert walk(http, LOGS_PATH) == [] and walk(http, ROOMS_PATH) == []


def test_standalone_serves_the_bill(tmp_path: Path) -> None:
    ids_file = tmp_path / "ids.txt"
    command = [sys.executable, "-m", "etl.fake_api", "--sessions", "12", "--bill"]
    command += ["--project-id", "p", "--token", "t", "--ids-file", str(ids_file)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            ids = ids_file.read_text().split()
            assert ids == [s["id"] for s in generate_account(12).sessions]
            with httpx.Client(base_url=base_url, auth=("p", "t"), trust_env=False) as http:
                entries = walk(http, LOGS_PATH, {"include_deleted": "true"})
                assert len(entries) == 12
                assert walk(http, members_path(ids[0])) == generate_account(12).members[ids[0]]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_shuffled_lists_still_page_exactly() -> None:
    with (
        FakeSignalWire(account=ACCOUNT, shuffle_list=True) as server,
        httpx.Client(base_url=server.base_url, auth=AUTH, trust_env=False) as http,
    ):
        entries = walk(http, LOGS_PATH, {"page_size": 7, "include_deleted": "true"})
        recordings = walk(http, RECORDINGS_PATH, {"page_size": 3})
    assert sorted(e["id"] for e in entries) == sorted(e["id"] for e in ACCOUNT.logs)
    created = [ts(e["created_at"]) for e in entries]
    assert created != sorted(created, reverse=True)
    every = [r["id"] for rs in ACCOUNT.recordings.values() for r in rs]
    assert sorted(r["id"] for r in recordings) == sorted(every)
