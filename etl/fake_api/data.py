"""Generated room sessions in the vendor's shapes: list items, and the by-id view of them."""

from __future__ import annotations

import functools
import hashlib
import random
import uuid
from collections.abc import Iterable, Mapping
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
    cost = None if duration is None else round(duration / 60 * 0.004 * rng.randint(1, 12), 4)
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
    (end_time, duration and cost_in_dollars null) and 5% have a null status (but consistent
    times). Some have no room_id; nullable fields are sometimes null; timestamps are UTC with
    'Z', about half with milliseconds. `created_at` falls in the 30 days before `now`
    (default 2026-11-01T00:00:00Z, so output depends on `n` and `seed` only).
    """
    rng = random.Random(seed)
    moment = DEFAULT_NOW if now is None else now.astimezone(UTC)
    room_ids = {name: _uuid4(rng) for name, _ in _ROOMS}
    kinds = [_KIND_CYCLE[i % len(_KIND_CYCLE)] for i in range(n)]
    rng.shuffle(kinds)
    sessions = [_make_session(rng, kind, moment, room_ids) for kind in kinds]
    return _newest_first(sessions)


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
