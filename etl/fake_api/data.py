"""Generated room sessions in the vendor's shapes: list items, and the by-id view of them."""

from __future__ import annotations

import functools
import hashlib
import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

LIST_ONLY_FIELDS: tuple[str, ...] = ("cost_in_dollars", "enable_room_previews", "locked_cover")

LIST_PATH = "/api/video/room_sessions"
DEFAULT_NOW = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

_ROOMS: tuple[tuple[str, str], ...] = (
    ("standup", "Daily Stand-up"),
    ("all-hands", "All Hands"),
    ("sales-demo", "Sales Demo"),
    ("support-desk", "Support Desk"),
    ("design-review", "Design Review"),
    ("office-hours", "Office Hours"),
    ("retro", "Rétrospective d'équipe"),
    ("town-hall", "Town Hall — Q4"),
    ("webinar", 'Webinar: "Launch" 🚀'),
    ("kundentermin", "Kundentermin München"),
)
_LAYOUTS = ("grid-responsive", "grid-responsive-mobile", "highlight-1-responsive", "2x2", "5up")
_MAX_MEMBERS = (None, 5, 10, 20, 50, 100)
# One cycle of session kinds: 17 completed, 2 in progress, 1 with a null status (85/10/5 %).
# The odd ones sit early in the cycle so that even small samples contain each kind.
_KIND_CYCLE: tuple[str, ...] = tuple(
    "in-progress" if i in (3, 13) else "null" if i == 9 else "completed" for i in range(20)
)


# --------------------------------------------------------------------------- data generation


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _truncate(moment: datetime, millis: bool) -> datetime:
    """Drop precision the wire format will not carry, so durations match the strings."""
    micro = moment.microsecond // 1000 * 1000 if millis else 0
    return moment.replace(microsecond=micro)


def _iso(moment: datetime) -> str:
    """ISO 8601 UTC with 'Z'; milliseconds only when the moment has any."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def _maybe(rng: random.Random, probability: float, value: Any) -> Any:
    """`value` with the given probability, else None."""
    return value if rng.random() < probability else None


def _room(rng: random.Random, room_ids: Mapping[str, str]) -> tuple[str | None, str, str | None]:
    """(room_id, name, display_name); ~10% are auto-created sessions without a room."""
    if rng.random() < 0.1:
        name = f"adhoc-{rng.getrandbits(24):06x}"
        return None, name, name
    name, display = rng.choice(_ROOMS)
    return room_ids[name], name, _maybe(rng, 0.95, display)


def _schedule(
    rng: random.Random, kind: str, now: datetime, millis: bool
) -> tuple[datetime, datetime, datetime | None, datetime]:
    """(created, start, end, updated): in-progress sessions are recent and have no end."""
    if kind == "in-progress":
        created = _truncate(now - timedelta(seconds=rng.uniform(60, 6 * 3600)), millis)
        start = _truncate(created + timedelta(seconds=rng.uniform(0, 30)), millis)
        updated = _truncate(start + timedelta(seconds=rng.uniform(0, 30)), millis)
        return created, start, None, updated
    created = _truncate(now - timedelta(seconds=rng.uniform(4 * 3600, 30 * 86400)), millis)
    start = _truncate(created + timedelta(seconds=rng.uniform(0, 120)), millis)
    end = _truncate(start + timedelta(seconds=rng.uniform(30, 3 * 3600)), millis)
    updated = _truncate(end + timedelta(seconds=rng.uniform(0, 5)), millis)
    return created, start, end, updated


def _optional_time(rng: random.Random, anchor: datetime, probability: float) -> str | None:
    if rng.random() >= probability:
        return None
    return _iso(_truncate(anchor + timedelta(seconds=rng.uniform(-600, 7200)), False))


def _make_session(
    rng: random.Random, kind: str, now: datetime, room_ids: Mapping[str, str]
) -> dict[str, Any]:
    session_id = _uuid4(rng)
    room_id, name, display_name = _room(rng, room_ids)
    created, start, end, updated = _schedule(rng, kind, now, millis=rng.random() < 0.5)
    duration = None if end is None else int((end - start).total_seconds())
    previews = rng.random() < 0.3
    # The list always carries a number: the final cost once completed, a running figure (here
    # 0, as the vendor often shows) while live.
    cost = 0.0 if duration is None else round(duration / 60 * 0.004 * rng.randint(1, 12), 4)
    return {
        "id": session_id,
        "room_id": room_id,
        "name": name,
        "display_name": display_name,
        "max_members": rng.choice(_MAX_MEMBERS),
        "quality": rng.choice(("720p", "1080p")),
        "fps": rng.choice((20, 30)),
        "join_from": _optional_time(rng, created, 0.2),
        "join_until": _optional_time(rng, created, 0.2),
        "remove_at": _optional_time(rng, created, 0.1),
        "remove_after_seconds_elapsed": _maybe(rng, 0.15, rng.choice((600, 1800, 3600))),
        "layout": _maybe(rng, 0.9, rng.choice(_LAYOUTS)),
        "record_on_start": rng.random() < 0.2,
        "tone_on_entry_and_exit": rng.random() < 0.7,
        "room_join_video_off": rng.random() < 0.1,
        "user_join_video_off": rng.random() < 0.1,
        "locked": rng.random() < 0.05,
        "start_time": _iso(start),
        "end_time": None if end is None else _iso(end),
        "duration": duration,
        "status": None if kind == "null" else kind,
        "created_at": _iso(created),
        "updated_at": _iso(updated),
        "preview_url": (
            f"https://example.signalwire.com/previews/{session_id}.mp4"
            if previews and kind == "in-progress"
            else None
        ),
        "prioritize_handraise": _maybe(rng, 0.9, rng.random() < 0.5),
        "sync_audio_video": _maybe(rng, 0.9, rng.random() < 0.8),
        "cost_in_dollars": cost,
        "enable_room_previews": previews,
        "locked_cover": rng.choice(("", "https://example.signalwire.com/covers/locked.png")),
    }


def generate_sessions(n: int, seed: int = 0, now: datetime | None = None) -> list[dict[str, Any]]:
    """Deterministic realistic sessions in list shape, newest `created_at` first.

    Every reference-page field plus the three list-only ones. About 85% are completed
    (start/end/duration set, duration == int((end - start).total_seconds())), 10% in progress
    (end_time and duration null, cost_in_dollars a running 0.0) and 5% have a null status (but
    consistent times). Some have no room_id; nullable fields are sometimes null; timestamps are
    UTC with 'Z', about half with milliseconds. `created_at` falls in the 30 days before `now`
    (default 2026-11-01T00:00:00Z, so output depends on `n` and `seed` only).
    """
    rng = random.Random(seed)
    moment = DEFAULT_NOW if now is None else now.astimezone(UTC)
    room_ids = {name: _uuid4(rng) for name, _ in _ROOMS}
    kinds = [_KIND_CYCLE[i % len(_KIND_CYCLE)] for i in range(n)]
    rng.shuffle(kinds)
    sessions = [_make_session(rng, kind, moment, room_ids) for kind in kinds]
    return _newest_first(sessions)


def list_view(session: dict[str, Any]) -> dict[str, Any]:
    """The session as a list item: `cost_in_dollars` is never null there (the vendor's spec
    marks it required and non-null; a live session has a running figure, often 0)."""
    if session.get("cost_in_dollars") is not None:
        return session
    return {**session, "cost_in_dollars": 0.0}


def by_id_view(session: Mapping[str, Any]) -> dict[str, Any]:
    """The session as GET /{id} returns it: the list-only fields removed."""
    return {key: value for key, value in session.items() if key not in LIST_ONLY_FIELDS}


@functools.lru_cache(maxsize=65536)
def _parse_time(value: str) -> datetime:
    """Parsed timestamp for ordering; text order is wrong when only some carry milliseconds."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _created(session: Mapping[str, Any]) -> datetime:
    value = session.get("created_at")
    return _parse_time(value) if isinstance(value, str) else datetime.min.replace(tzinfo=UTC)


def _newest_first(sessions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest created_at first, ties by id ascending."""
    by_id = sorted(sessions, key=lambda s: str(s.get("id")))
    return sorted(by_id, key=_created, reverse=True)


def _shuffled(sessions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """An order unrelated to created_at, yet stable between requests so paging stays exact."""
    return sorted(sessions, key=lambda s: hashlib.blake2b(str(s.get("id")).encode()).digest())


# --------------------------------------------------------------------------- the rest of the bill
# Members, recordings, rooms and video log entries consistent with the sessions they belong to.
# The amounts are a model, not the vendor's price list: participation is charged per member-minute
# (the vendor's pages mention "just over 1 cent per participant minute"), recordings per recorded
# minute on top (an inference, see members-recordings-logs.md). A session's listed cost is the
# sum of its members' costs; its log entry's charge is that plus its recordings', itemised.

ROOMS_PATH = "/api/video/rooms"
RECORDINGS_PATH = "/api/video/room_recordings"
LOGS_PATH = "/api/video/logs"
SESSION_CHILDREN = ("members", "recordings")
MEMBER_RATE = 0.0125  # dollars per member-minute
RECORDING_RATE = 0.0045  # dollars per recorded minute
RECORDING_BYTES_PER_SECOND = {"720p": 180_000, "1080p": 400_000}  # 1080p passes 2 GiB at ~90 min
DEFAULT_MEDIA_TTL = 900
PARTICIPATION = "Video room session participant minutes"
RECORDING = "Video room recording minutes"
_SPACE = "https://example.signalwire.com"
_NAMES = (
    "Ada Lovelace", "Grace Hopper", "Linus", "Zoë Ångström", "李雷", "Dr. O'Brien",
    "guest", "Renée", "José Martí", "Ola Nordmann", "Anna-Lena Schmidt", "🎧 DJ",
)  # fmt: skip


def money(amount: float) -> float:
    """Dollars rounded to the micro-dollar, the precision the stand-in states."""
    return round(float(amount), 6)


def member_cost(duration: int) -> float:
    return money(duration / 60 * MEMBER_RATE)


def recording_cost(duration: int) -> float:
    return money(duration / 60 * RECORDING_RATE)


def recording_size(duration: int, quality: str | None) -> int:
    return duration * RECORDING_BYTES_PER_SECOND.get(quality or "720p", 180_000)


def whole_seconds(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds())


def parse_time(value: str) -> datetime:
    """A timestamp the stand-in wrote, as an aware datetime."""
    return _parse_time(value)


def iso(moment: datetime) -> str:
    """A moment as the stand-in writes it (UTC, 'Z', milliseconds when it has any)."""
    return _iso(_truncate(moment.astimezone(UTC), True))


def new_member(member_id: str, session_id: str, name: str | None, join: datetime) -> dict[str, Any]:
    """A member who has joined and not left: no leave_time, no duration, a running 0 cost."""
    return {
        "id": member_id,
        "room_session_id": session_id,
        "name": name,
        "join_time": iso(join),
        "leave_time": None,
        "duration": None,
        "cost_in_dollars": 0.0,
    }


def end_member(member: dict[str, Any], leave: datetime) -> None:
    """The member leaves at `leave` (never before joining): duration and final cost set."""
    join = parse_time(member["join_time"])
    leave = _truncate(max(leave.astimezone(UTC), join), True)
    duration = whole_seconds(join, leave)
    member.update(leave_time=iso(leave), duration=duration, cost_in_dollars=member_cost(duration))


def new_recording(recording_id: str, session_id: str, start: datetime) -> dict[str, Any]:
    """A recording that is recording: no end, size or cost yet. Stored without `uri` (the
    server signs a fresh one per response, for completed recordings only)."""
    return {
        "id": recording_id,
        "room_session_id": session_id,
        "status": "recording",
        "started_at": iso(start),
        "finished_at": None,
        "duration": None,
        "size_in_bytes": None,
        "format": "video/mp4",
        "cost_in_dollars": 0.0,
        "created_at": iso(start),
        "updated_at": iso(start),
    }


def end_recording(
    recording: dict[str, Any], finish: datetime, quality: str | None, *, processing: bool = False
) -> None:
    """Stop the recording at `finish` (if still running). `processing`: ended, file not ready
    (no size, cost 0); otherwise completed with its size and cost."""
    start = parse_time(recording["started_at"])
    if recording.get("finished_at") is None:
        finish = _truncate(max(finish.astimezone(UTC), start), True)
        recording.update(finished_at=iso(finish), duration=whole_seconds(start, finish))
    else:
        finish = parse_time(recording["finished_at"])
    duration = recording["duration"]
    if processing:
        recording.update(status="processing", updated_at=iso(finish))
        return
    recording.update(
        status="completed",
        size_in_bytes=recording_size(duration, quality),
        cost_in_dollars=recording_cost(duration),
        updated_at=iso(max(finish, parse_time(recording["updated_at"]))),
    )


def charge_details(
    session: Mapping[str, Any], recordings: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The itemised charge of a session's log entry; empty while the session is live."""
    if session.get("status") == "in-progress":
        return []
    details = [{"description": PARTICIPATION, "charge": money(session["cost_in_dollars"] or 0)}]
    recorded = [r["cost_in_dollars"] for r in recordings if r.get("status") == "completed"]
    if recorded:
        details.append({"description": RECORDING, "charge": money(sum(recorded))})
    return details


def log_entry(
    log_id: str,
    session: Mapping[str, Any],
    recordings: Iterable[Mapping[str, Any]],
    *,
    absolute_url: bool = False,
) -> dict[str, Any]:
    """The video log entry of a session, its charge the sum of its itemised charges."""
    details = charge_details(session, recordings)
    path = f"{LIST_PATH}/{session['id']}"
    return {
        "id": log_id,
        "source": "realtime_api",
        "type": "video_room_session",
        "url": _SPACE + path if absolute_url else path,
        "room_name": session.get("name"),
        "status": session.get("status"),
        "locked": bool(session.get("locked")),
        "started_at": session.get("start_time"),
        "ended_at": session.get("end_time"),
        "charge": money(sum(d["charge"] for d in details)),
        "created_at": session["created_at"],
        "charge_details": details,
    }


def refresh_log(entry: dict[str, Any], session: Mapping[str, Any], recordings: Any) -> None:
    """Bring a session's log entry up to date with the session (status, end, charges)."""
    fresh = log_entry(entry["id"], session, recordings)
    fresh["url"] = entry["url"]
    fresh["created_at"] = entry["created_at"]
    entry.update(fresh)


@dataclass
class VideoAccount:
    """Everything the stand-in can serve about one account, consistent across endpoints.

    `members` and `recordings` are keyed by session id (items in join / start order);
    `discarded_logs` maps the ids of log entries deleted upstream to their `discarded_at`.
    """

    sessions: list[dict[str, Any]]
    members: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    recordings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rooms: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    discarded_logs: dict[str, str] = field(default_factory=dict)


def generate_account(n: int, seed: int = 0, now: datetime | None = None) -> VideoAccount:
    """`generate_sessions(n, seed, now)` with members, recordings, rooms and log entries.

    - members: 1-8 attendance intervals per session inside its start/end, some rejoining under
      the same name with a new id; in a live session some have not left (no leave_time,
      duration null, cost 0). A completed session's listed cost is the sum of its members'.
    - recordings: every record_on_start session and about 1 in 10 others; live sessions'
      are `recording` or `paused`; a session that ended within the hour has them `processing`
      (no size, cost 0); sizes grow with duration and quality, so long 1080p ones pass 2 GiB.
    - rooms: one per room id the sessions name, plus one room no session used. About 1 in 20
      sessions of a room have a null room_id (match by name); one room was deleted and created
      again under the same name, so its sessions' room_id is found by name only.
    - logs: one entry per session (url relative or absolute, half each), `charge` the sum of
      `charge_details`, some details' charges as numeric text as the conference-logs API has
      them; about 1 in 30 entries is deleted upstream (in `discarded_logs`).
    Deterministic in (n, seed, now); the sessions' other fields are those of generate_sessions.
    """
    moment = DEFAULT_NOW if now is None else now.astimezone(UTC)
    rng = random.Random(f"roomsync-bill-{seed}")
    sessions = [dict(s) for s in generate_sessions(n, seed=seed, now=now)]
    account = VideoAccount(sessions=sessions)
    for session in sessions:
        members = _members(rng, session, moment)
        account.members[session["id"]] = members
        if session["status"] != "in-progress":
            session["cost_in_dollars"] = money(sum(m["cost_in_dollars"] for m in members))
        account.recordings[session["id"]] = _recordings(rng, session, moment)
    account.rooms = _rooms_of(rng, sessions, moment)
    for session in sessions:
        entry = log_entry(
            _uuid4(rng),
            session,
            account.recordings[session["id"]],
            absolute_url=rng.random() < 0.5,
        )
        if rng.random() < 0.1:
            for detail in entry["charge_details"]:
                detail["charge"] = f"{detail['charge']:.6f}"
        account.logs.append(entry)
        if rng.random() < 1 / 30:
            created = parse_time(entry["created_at"])
            gone = min(moment, created + timedelta(hours=rng.uniform(1, 240)))
            account.discarded_logs[entry["id"]] = iso(gone)
    return account


def _session_span(session: Mapping[str, Any], now: datetime) -> tuple[datetime, datetime]:
    start = parse_time(session["start_time"])
    end = session.get("end_time")
    return start, (parse_time(end) if end else max(start, now))


def _members(rng: random.Random, session: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    start, end = _session_span(session, now)
    live = session.get("end_time") is None
    span = (end - start).total_seconds()
    cap = session.get("max_members") or 8
    members: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, min(8, cap))):
        name = None if rng.random() < 0.05 else rng.choice(_NAMES)
        join = _truncate(start + timedelta(seconds=rng.uniform(0, 0.3 * span)), rng.random() < 0.5)
        member = new_member(_uuid4(rng), session["id"], name, join)
        members.append(member)
        if live and rng.random() < 0.6:
            continue  # still in the room
        leave = join + (end - join) * rng.uniform(0.2, 1.0)
        end_member(member, _truncate(leave, True))
        rejoin = parse_time(member["leave_time"]) + timedelta(seconds=rng.uniform(5, 60))
        if rng.random() < 0.15 and rejoin < end:
            again = new_member(_uuid4(rng), session["id"], name, _truncate(rejoin, True))
            members.append(again)
            if not (live and rng.random() < 0.5):
                end_member(again, _truncate(rejoin + (end - rejoin) * rng.uniform(0.3, 1), True))
    return members


def _recordings(
    rng: random.Random, session: Mapping[str, Any], now: datetime
) -> list[dict[str, Any]]:
    if not (session.get("record_on_start") or rng.random() < 0.1):
        return []
    start, end = _session_span(session, now)
    first = start + timedelta(seconds=1 if session.get("record_on_start") else rng.uniform(5, 60))
    starts = [min(first, end)]
    if rng.random() < 0.1:
        starts.append(starts[0] + (end - starts[0]) * rng.uniform(0.5, 0.9))
    recordings = []
    for begin in starts:
        recording = new_recording(_uuid4(rng), session["id"], _truncate(begin, True))
        recordings.append(recording)
        if session.get("end_time") is None:
            if rng.random() < 0.2:
                recording["status"] = "paused"
            continue
        processing = now - end < timedelta(hours=1)
        end_recording(recording, end, session.get("quality"), processing=processing)
        if not processing:
            ready = parse_time(recording["finished_at"]) + timedelta(seconds=rng.uniform(5, 120))
            recording["updated_at"] = iso(ready)
    return recordings


def _rooms_of(
    rng: random.Random, sessions: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    by_id: dict[str, dict[str, Any]] = {}
    for session in reversed(sessions):  # oldest first: the room predates its first session
        room_id = session["room_id"]
        if room_id is None:
            continue
        if room_id not in by_id:
            by_id[room_id] = _make_room(rng, room_id, session)
        elif session.get("display_name"):
            by_id[room_id]["display_name"] = session["display_name"]
    rooms = list(by_id.values())
    for session in sessions:
        if session["room_id"] is not None and rng.random() < 0.05:
            session["room_id"] = None  # the room was set to delete on end: match by name
    recreated = next((r for r in rooms if r["name"] == "kundentermin"), None)
    if recreated is not None:  # deleted and created again: a new id under the old name
        recreated["id"] = _uuid4(rng)
        recreated["created_at"] = recreated["updated_at"] = iso(now - timedelta(days=1))
    unused_id = _uuid4(rng)
    unused = {"name": "unused-room", "display_name": None, "created_at": iso(now)}
    rooms.append(_make_room(rng, unused_id, unused))
    return _newest_first(rooms)


def _make_room(rng: random.Random, room_id: str, session: Mapping[str, Any]) -> dict[str, Any]:
    created = parse_time(session["created_at"]) - timedelta(days=rng.uniform(1, 60))
    return {
        "id": room_id,
        "name": session["name"],
        "display_name": session.get("display_name"),
        "description": _maybe(rng, 0.5, f"Room for {session['name']}"),
        "max_members": rng.choice((5, 10, 20, 50, 100, 300)),
        "quality": rng.choice(("720p", "1080p")),
        "fps": rng.choice((20, 30)),
        "join_from": None,
        "join_until": None,
        "remove_at": None,
        "remove_after_seconds_elapsed": _maybe(rng, 0.1, 3600),
        "layout": rng.choice(_LAYOUTS),
        "record_on_start": rng.random() < 0.2,
        "tone_on_entry_and_exit": rng.random() < 0.7,
        "room_join_video_off": False,
        "user_join_video_off": rng.random() < 0.1,
        "enable_room_previews": _maybe(rng, 0.9, rng.random() < 0.3),
        "sync_audio_video": _maybe(rng, 0.9, True),
        "meta": _maybe(rng, 0.7, {"cost_centre": f"CC-{rng.randint(1, 99):02d}", "team": "ops"}),
        "prioritize_handraise": rng.random() < 0.5,
        "created_at": iso(created),
        "updated_at": iso(created + timedelta(hours=rng.uniform(0, 48))),
    }


RECORDING_URI_PREFIX = _SPACE + "/temporary/recordings/"  # then {id}.mp4?Expires=..&Signature=..
