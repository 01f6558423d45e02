"""A living SignalWire account on a virtual clock, synced by `roomsync sync` as cron would.

The account: `--history` sessions already there when the first sync runs, then `--per-day`
new ones a day. A session lasts 1-180 minutes, or (a `--long-share` of them) up to
`--max-hours`; 1 % are deleted upstream while live. The list and by-id views are served as the
vendor does (etl.fake_api's server over loopback, this module's account behind it): the list
newest first, 1,000 a page at most, with `cost_in_dollars` always a number (0 while live, the
final cost once completed); get-by-id without the three list-only fields; 404 once deleted.

Every 10 virtual minutes the account moves on (sessions created, completed, deleted) and one
`roomsync sync` runs in this process (the library function, real HTTP over loopback, a SQLite
file). Per run it prints the requests by kind (list pages, in-progress-filter pages, by-id)
against the floor -- the fewest list pages that could have seen every change since the previous
run: ceil(depth of the deepest changed session / 1000), at least 1 -- and whether the table is
exact: no missing row, no stale status or duration, no wrong cost (a cost the report counts that
is not the final one), every stored session deleted upstream marked `deleted_at`; `pending`
counts completed sessions whose final cost the table does not have yet (not counted by the
report, so not wrong, but not exact either).

After the day: a backfill of ids the table holds exactly (`roomsync backfill FILE`, in process),
and a `backfill --via-list` of ids into an empty database, each with its requests per id.

    python bench/simulate.py                          # docs/performance.md's scenarios
    python bench/simulate.py --history 20000 --max-hours 12 --runs 144 -v

The code under test is whatever `etl` imports: run it with PYTHONPATH pointing at another
checkout's root to measure that one (it needs only run_sync, the CLI and the stand-in).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import heapq
import json
import logging
import math
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import etl
from etl.cli import main as cli_main
from etl.config import Settings
from etl.fake_api import FakeSignalWire, generate_account, generate_sessions
from etl.fake_api import data as bill_data
from etl.fake_api.faults import Response, _json_bytes
from etl.storage.migrate import upgrade

PROJECT, TOKEN = "sim-project", "sim-token"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
TICK = timedelta(minutes=10)
PAGE = 1000
_TEMPLATE = generate_sessions(1, seed=7)[0]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Life:
    """One session's life on the virtual clock."""

    id: str
    created: datetime
    end: datetime
    deleted: datetime | None
    final_cost: float
    members: int = 1  # attendance intervals, joined one minute apart from the start
    recorded: bool = False  # one recording from the start to the end

    @property
    def id_int(self) -> int:
        return uuid.UUID(self.id).int


@dataclass(order=True)
class Event:
    at: datetime
    kind: int  # 0 create, 1 end, 2 delete (this order at the same instant)
    id: str = field(compare=False)


class Account(FakeSignalWire):
    """The stand-in server, serving this account's sessions as they are at the virtual time."""

    def __init__(self, lives: list[Life]) -> None:
        super().__init__(project_id=PROJECT, token=TOKEN, count_paths=False)
        self.lives = {life.id: life for life in lives}
        self.events: list[Event] = []
        for life in lives:
            self.events.append(Event(life.created, 0, life.id))
            if life.deleted is not None:
                self.events.append(Event(life.deleted, 2, life.id))
            else:
                self.events.append(Event(life.end, 1, life.id))
        heapq.heapify(self.events)
        self.order: list[dict[str, Any]] = []  # newest created first, ties by id
        self.deleted: dict[str, datetime] = {}  # id -> created, of sessions deleted upstream
        self.list_pages = 0
        self.filter_pages = 0
        self.bill_requests: collections.Counter[str] = collections.Counter()
        self.log_order: list[dict[str, Any]] = []  # log entries, newest created first
        self.log_of_session: dict[str, dict[str, Any]] = {}
        self.load_rooms()

    # --------------------------------------------------------------- the virtual clock

    def begin_request(self, path: str) -> None:
        super().begin_request(path)
        if path.endswith("/members"):
            self.bill_requests["members"] += 1
        elif path.endswith("/recordings"):
            self.bill_requests["recordings"] += 1
        elif path == "/api/video/rooms":
            self.bill_requests["rooms"] += 1
        elif path == "/api/video/logs":
            self.bill_requests["logs"] += 1

    def load_rooms(self) -> None:
        """The rooms of a small generated account (the sessions here name none by id)."""
        for room in generate_account(20, seed=3, now=T0).rooms:
            self.add_room(room)

    def advance(self, now: datetime, previous: datetime | None) -> int:
        """Apply every event up to `now`; return the floor for a sync run now (the sessions'
        list pages; the bill's floor is counted in `self.bill_floor`)."""
        self.completed_now = 0
        self.new_entries = 0
        created: list[dict[str, Any]] = []
        changed: list[datetime] = []  # created_at of sessions changed since `previous`
        removed = False
        while self.events and self.events[0].at <= now:
            event = heapq.heappop(self.events)
            life = self.lives[event.id]
            if event.kind == 0:
                session = self._live_body(life)
                self.sessions[life.id] = session
                created.append(session)
                self._bill_created(session, life)
            elif event.kind == 1:
                self._complete(self.sessions[life.id], life)
                self._bill_completed(self.sessions[life.id], life)
                if previous is not None and life.created <= previous:
                    changed.append(life.created)
            else:
                del self.sessions[life.id]
                self.deleted[life.id] = life.created
                self._bill_deleted(life, event.at)
                removed = True
                if previous is not None and life.created <= previous:
                    changed.append(life.created)
        created = [s for s in created if s["id"] in self.sessions]  # not deleted since
        created.sort(key=lambda s: (-self.lives[s["id"]].created.timestamp(), s["id"]))
        if removed:
            self.order = [s for s in self.order if s["id"] in self.sessions]
        self.order = created + self.order
        if previous is None:
            return max(1, math.ceil(len(self.order) / PAGE))
        changed += [self.lives[s["id"]].created for s in created]
        if not changed:
            return 1
        return max(1, math.ceil(self._depth(min(changed)) / PAGE))

    def _depth(self, created: datetime) -> int:
        """Position (1-based) in the newest-first list of a session created at `created`."""
        keys = [-self.lives[s["id"]].created.timestamp() for s in self.order]
        return bisect.bisect_left(keys, -created.timestamp()) + 1

    def _live_body(self, life: Life) -> dict[str, Any]:
        start = life.created + timedelta(seconds=5)
        return {
            **_TEMPLATE,
            "id": life.id,
            "created_at": iso(life.created),
            "start_time": iso(start),
            "updated_at": iso(start),
            "end_time": None,
            "duration": None,
            "status": "in-progress",
            "cost_in_dollars": 0.0,  # a running figure; the vendor often shows 0
        }

    @staticmethod
    def _complete(session: dict[str, Any], life: Life) -> None:
        start = life.created + timedelta(seconds=5)
        session.update(
            status="completed",
            end_time=iso(life.end),
            duration=int((life.end - start).total_seconds()),
            updated_at=iso(life.end),
            cost_in_dollars=life.final_cost,
        )

    # --------------------------------------------------------------- the rest of the bill

    def _bill_created(self, session: dict[str, Any], life: Life) -> None:
        start = life.created + timedelta(seconds=5)
        self.members[life.id] = [
            bill_data.new_member(
                str(uuid.UUID(int=life.id_int + n + 1)),
                life.id,
                f"guest {n}",
                min(start + timedelta(minutes=n), life.end),
            )
            for n in range(life.members)
        ]
        if life.recorded:
            recording_id = str(uuid.UUID(int=life.id_int + 1000))
            self.recordings[life.id] = [bill_data.new_recording(recording_id, life.id, start)]
        entry = bill_data.log_entry(str(uuid.UUID(int=life.id_int + 2000)), session, [])
        self.logs[entry["id"]] = entry
        self.log_of_session[life.id] = entry
        self.log_order.insert(0, entry)  # events come in time order: newest first
        self.new_entries += 1

    def _bill_completed(self, session: dict[str, Any], life: Life) -> None:
        for member in self.members.get(life.id, []):
            bill_data.end_member(member, life.end)
        for recording in self.recordings.get(life.id, []):
            bill_data.end_recording(recording, life.end, session.get("quality"))
        session["cost_in_dollars"] = bill_data.money(
            sum(m["cost_in_dollars"] for m in self.members.get(life.id, []))
        )
        bill_data.refresh_log(
            self.log_of_session[life.id], session, self.recordings.get(life.id, [])
        )
        self.completed_now += 1

    def _bill_deleted(self, life: Life, at: datetime) -> None:
        """A session deleted upstream: its log entry is deleted with it."""
        entry = self.log_of_session[life.id]
        self.discarded_logs[entry["id"]] = bill_data.iso(at)

    def _logs_listed(self, params: dict[str, str]) -> list[dict[str, Any]] | Response:
        """The logs newest first (kept in order as they are made), `created_after` by
        bisection, deleted entries as {id, discarded_at, created_at} (include_deleted)."""
        after = params.get("created_after")
        entries = self.log_order
        if after is not None:
            bound = datetime.fromisoformat(after.replace("Z", "+00:00"))
            keys = [-bill_data.parse_time(e["created_at"]).timestamp() for e in entries]
            entries = entries[: bisect.bisect_left(keys, -bound.timestamp())]
            entries = [e for e in entries if bill_data.parse_time(e["created_at"]) > bound]
        deleted = params.get("include_deleted") == "true"
        listed = []
        for entry in entries:
            gone = self.discarded_logs.get(entry["id"])
            if gone is None:
                listed.append(dict(entry))
            elif deleted:
                listed.append(
                    {"id": entry["id"], "discarded_at": gone, "created_at": entry["created_at"]}
                )
        return listed

    # --------------------------------------------------------------- the list endpoint

    def _list_response(self, path: str, query: str, *, bad_types: bool) -> Response:
        parsed = self._parse_list_query(query)
        if isinstance(parsed, Response):
            return parsed
        filters = dict(parsed.filters)
        if filters.get("status") == "in-progress":
            self.filter_pages += 1
            matching = [s for s in self.order if s["status"] == "in-progress"]
        else:
            self.list_pages += 1
            matching = self.order
        page = matching[parsed.offset : parsed.offset + parsed.page_size]
        links = self._links(path, query, parsed, total=len(matching))
        return Response(200, _json_bytes({"links": links, "data": page}))


# ------------------------------------------------------------------- the account's history


def make_lives(args: argparse.Namespace, rng: random.Random) -> list[Life]:
    """`history` sessions before T0 and `per_day` a day after it, for the simulated span."""
    span = timedelta(minutes=10 * args.runs)
    history_days = args.history / args.per_day
    lives: list[Life] = []
    starts = [T0 - timedelta(days=history_days * rng.random()) for _ in range(args.history)]
    count = round(args.per_day * span / timedelta(days=1))
    starts += [T0 + span * rng.random() for _ in range(count)]
    for created in starts:
        created = created.replace(microsecond=created.microsecond // 1000 * 1000)
        if args.max_hours > 3 and rng.random() < args.long_share:
            minutes = rng.uniform(1, args.max_hours * 60)
        else:
            minutes = rng.uniform(1, min(180, args.max_hours * 60))
        end = created + timedelta(minutes=minutes)
        end = end.replace(microsecond=end.microsecond // 1000 * 1000)
        deleted = None
        if rng.random() < args.deleted_share and end > T0:  # deleted while live, upstream
            deleted = max(created, T0) + (end - max(created, T0)) * rng.random()
        cost = round(minutes * 0.004 * rng.randint(1, 12), 4)
        session_id = str(uuid.UUID(int=rng.getrandbits(128) >> 16 << 16, version=4))
        members, recorded = rng.randint(1, 8), rng.random() < 0.2
        lives.append(Life(session_id, created, end, deleted, cost, members, recorded))
    return lives


# ------------------------------------------------------------------- checking the table


@dataclass
class Check:
    missing: int = 0
    stale: int = 0
    wrong_cost: int = 0
    pending: int = 0
    unmarked: int = 0
    bill_wrong: dict[str, int] = field(default_factory=dict)  # per bill table: rows not exact

    @property
    def exact(self) -> bool:
        bill = sum(self.bill_wrong.values())
        return not (self.missing or self.stale or self.wrong_cost or self.unmarked or bill)


def check_bill(db: Path, account: Account, parts: frozenset[str]) -> dict[str, int]:
    """Rows of the four bill tables that differ from the account now (missing, extra or
    wrong): members and recordings of every completed session, every log entry (charge,
    status, deleted or not), every room."""
    conn = sqlite3.connect(db)
    try:
        members = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT id, room_session_id, duration, cost_in_dollars FROM room_session_members"
            )
        }
        recordings = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT id, room_session_id, status, duration, cost_in_dollars FROM room_recordings"
            )
        }
        charges = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT id, charge, status, discarded_at IS NOT NULL FROM video_charges"
            )
        }
        rooms = {r[0]: r[1] for r in conn.execute("SELECT id, deleted_at IS NOT NULL FROM rooms")}
    finally:
        conn.close()
    wrong: dict[str, int] = {}
    done = [i for i, s in account.sessions.items() if s["status"] == "completed"]
    if "members" in parts:
        expected = {
            m["id"]: (i, m["duration"], m["cost_in_dollars"])
            for i in done
            for m in account.members.get(i, [])
        }
        wrong["members"] = sum(members.get(k) != v for k, v in expected.items())
    if "recordings" in parts:
        expected = {
            r["id"]: (i, r["status"], r["duration"], r["cost_in_dollars"])
            for i in done
            for r in account.recordings.get(i, [])
        }
        wrong["recordings"] = sum(recordings.get(k) != v for k, v in expected.items())
    if "charges" in parts:
        bad = 0
        for entry_id, entry in account.logs.items():
            gone = entry_id in account.discarded_logs
            row = charges.get(entry_id)
            if (
                row is None
                or bool(row[2]) != gone
                or not gone
                and (row[0] != entry["charge"] or row[1] != entry["status"])
            ):
                bad += 1
        wrong["charges"] = bad
    if "rooms" in parts:
        wrong["rooms"] = sum(rooms.get(k) != 0 for k in account.rooms) + sum(
            1 for k, gone in rooms.items() if k not in account.rooms and not gone
        )
    return wrong


def check_table(db: Path, account: Account) -> Check:
    """Compare every stored row with the account as it is now."""
    conn = sqlite3.connect(db)
    try:
        names = {row[1] for row in conn.execute("PRAGMA table_info(room_sessions)")}
        final = "cost_final" if "cost_final" in names else "NULL"
        deleted = "deleted_at" if "deleted_at" in names else "NULL"
        stored = {
            row[0]: row[1:]
            for row in conn.execute(
                f"SELECT id, status, duration, cost_in_dollars, {final}, {deleted} "
                "FROM room_sessions"
            )
        }
    finally:
        conn.close()
    result = Check()
    for session_id, session in account.sessions.items():
        row = stored.get(session_id)
        if row is None:
            result.missing += 1
            continue
        status, duration, cost, cost_final, deleted_at = row
        if status != session["status"] or duration != session["duration"] or deleted_at:
            result.stale += 1
            continue
        if status != "completed":
            if cost_final:
                result.wrong_cost += 1
            continue
        if cost_final is None:  # a schema without cost_final: every stored cost is reported
            if cost != session["cost_in_dollars"]:
                result.wrong_cost += 1
        elif not cost_final:
            result.pending += 1
        elif cost != session["cost_in_dollars"]:
            result.wrong_cost += 1
    for session_id in account.deleted:
        row = stored.get(session_id)
        if row is not None and not row[4]:
            result.unmarked += 1
    return result


# ------------------------------------------------------------------- running roomsync


def sync_once(settings: Settings, url: str, parts: frozenset[str], now: datetime) -> None:
    from etl.storage import Store
    from etl.sync import run_sync

    with Store.open(url) as store:
        run_sync(settings, store, with_parts=parts, now=now)


def backfill(account: Account, url: str, ids: list[str], tmp: Path, *extra: str) -> int:
    """`roomsync backfill FILE --json [extra]` in process; returns the requests it made."""
    path = tmp / f"ids-{len(ids)}-{'-'.join(extra) or 'plain'}.txt"
    path.write_text("".join(f"{i}\n" for i in ids))
    env = {
        "SIGNALWIRE_SPACE": account.base_url,
        "SIGNALWIRE_PROJECT_ID": PROJECT,
        "SIGNALWIRE_API_TOKEN": TOKEN,
        "DATABASE_URL": url,
    }
    before = account.total_requests
    result = CliRunner().invoke(cli_main, ["backfill", str(path), "--json", *extra], env=env)
    logging.disable(logging.WARNING)  # the CLI set up its own logging: keep the output short
    if result.exit_code not in (0, 1):
        raise RuntimeError(f"backfill failed ({result.exit_code}): {result.output[-500:]}")
    return account.total_requests - before


@dataclass
class Totals:
    runs: int = 0
    requests: int = 0
    floor: int = 0
    list_pages: int = 0
    filter_pages: int = 0
    by_id: int = 0
    exact_runs: int = 0
    pending_runs: int = 0
    worst: float = 0.0
    first: tuple[int, int] = (0, 0)
    backfill: str = "-"
    via_list: str = "-"
    seconds: float = 0.0
    bill: collections.Counter[str] = field(default_factory=collections.Counter)  # by kind
    bill_floor: int = 0  # of `floor`: the bill's part


def simulate(args: argparse.Namespace, tmp: Path) -> Totals:
    rng = random.Random(args.seed)
    account = Account(make_lives(args, rng))
    tmp = Path(tempfile.mkdtemp(prefix="scenario-", dir=tmp))  # a fresh database each
    db = tmp / "sim.db"
    url = f"sqlite:///{db}"
    upgrade(url)
    totals = Totals()
    started = time.monotonic()
    with account:
        settings = Settings(
            base_url=account.base_url,
            project_id=PROJECT,
            api_token=TOKEN,
            database_url=url,
            timeout=30.0,
            retries=3,
            backoff=0.01,
        )
        previous: datetime | None = None
        parts: frozenset[str] = args.parts
        for run in range(args.runs + 1):
            now = T0 + TICK * run
            floor = account.advance(now, previous)
            bill_floor = bill_floor_of(account, parts, first=run == 0)
            floor += bill_floor
            before = (account.total_requests, account.list_pages, account.filter_pages)
            bill_before = collections.Counter(account.bill_requests)
            sync_once(settings, url, parts, now)
            total = account.total_requests - before[0]
            lists = account.list_pages - before[1]
            filters = account.filter_pages - before[2]
            bill = account.bill_requests - bill_before
            by_id = total - lists - filters - sum(bill.values())
            check = check_table(db, account)
            check.bill_wrong = check_bill(db, account, parts)
            if args.verbose or run == 0:
                print(
                    f"  run {run:3d} {now:%m-%d %H:%M}  list {lists:4d}  filter {filters:2d}  "
                    f"by-id {by_id:5d}  members {bill['members']:4d}  recordings "
                    f"{bill['recordings']:4d}  rooms {bill['rooms']}  logs {bill['logs']:3d}  "
                    f"total {total:5d}  floor {floor:4d}  "
                    f"x{total / floor:6.2f}  exact {'yes' if check.exact else 'NO '}  "
                    f"missing {check.missing} stale {check.stale} wrong {check.wrong_cost} "
                    f"pending {check.pending} unmarked {check.unmarked} bill {check.bill_wrong}",
                    flush=True,
                )
            if run == 0:
                totals.first = (total, floor)
            else:
                totals.runs += 1
                totals.requests += total
                totals.floor += floor
                totals.list_pages += lists
                totals.filter_pages += filters
                totals.by_id += by_id
                totals.bill.update(bill)
                totals.bill_floor += bill_floor
                totals.exact_runs += check.exact
                totals.pending_runs += check.pending > 0
                totals.worst = max(totals.worst, total / floor)
            previous = now
        totals.seconds = time.monotonic() - started
        exact_ids = exact_stored_ids(db, account)[: args.backfill_ids]
        if exact_ids:
            made = backfill(account, url, exact_ids, tmp, "--with", "none")
            totals.backfill = f"{made / len(exact_ids):.4f} ({made} for {len(exact_ids):,})"
        if args.via_list:
            fresh = f"sqlite:///{tmp / 'via-list.db'}"
            upgrade(fresh)
            ids = rng.sample(
                sorted(account.sessions), min(args.backfill_ids, len(account.sessions))
            )
            ids += list(account.deleted)[:10]
            try:
                made = backfill(account, fresh, ids, tmp, "--via-list", "--with", "none")
                totals.via_list = f"{made / len(ids):.4f} ({made} for {len(ids):,})"
            except RuntimeError as exc:  # an older roomsync without --via-list
                totals.via_list = f"n/a ({str(exc)[:40]})"
    return totals


def bill_floor_of(account: Account, parts: frozenset[str], *, first: bool) -> int:
    """The bill's floor for a run: one members page and one recordings page per session
    completed since the previous run, the log pages that hold the entries created since (at
    least one: a poll reads one page to see there is nothing new), and the one rooms page. The
    first run's floor is every completed session's and every log entry's."""
    floor = 0
    completed = account.completed_now
    entries = account.new_entries
    if first:
        completed = sum(1 for s in account.sessions.values() if s["status"] == "completed")
        entries = len(account.logs)
    floor += sum(completed for part in ("members", "recordings") if part in parts)
    if "charges" in parts:
        floor += max(1, math.ceil(entries / PAGE))
    if "rooms" in parts:
        floor += 1
    return floor


def exact_stored_ids(db: Path, account: Account) -> list[str]:
    """Ids whose stored row matches the account exactly, cost included (sorted)."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT id, status, cost_in_dollars FROM room_sessions").fetchall()
    finally:
        conn.close()
    return sorted(
        i
        for i, status, cost in rows
        if i in account.sessions
        and status == "completed"
        and cost == account.sessions[i]["cost_in_dollars"]
        and account.sessions[i]["status"] == "completed"
    )


SCENARIOS = [
    {"history": 20_000, "max_hours": 3.0},
    {"history": 120_000, "max_hours": 3.0},
    {"history": 20_000, "max_hours": 12.0},
    {"history": 120_000, "max_hours": 12.0},
    {"history": 120_000, "max_hours": 12.0, "long_share": 1.0},
    {"history": 120_000, "max_hours": 12.0, "long_share": 0.01, "per_day": 20_000},
]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", type=int, help="sessions before the first sync")
    parser.add_argument("--per-day", type=int, default=2000)
    parser.add_argument("--max-hours", type=float, help="longest live session, hours")
    parser.add_argument(
        "--long-share",
        type=float,
        default=0.1,
        help="share of sessions lasting 3 h up to --max-hours (when above 3)",
    )
    parser.add_argument("--deleted-share", type=float, default=0.01)
    parser.add_argument("--runs", type=int, default=144, help="cron runs after the first")
    parser.add_argument("--backfill-ids", type=int, default=10_000)
    parser.add_argument("--no-via-list", dest="via_list", action="store_false")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--parts",
        default="members,recordings,charges,rooms",
        help="what sync fetches besides the sessions (`sync --with`; none: sessions only)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every run")
    args = parser.parse_args(argv)
    from etl.config import SYNC_PARTS, parse_with

    args.parts = parse_with(args.parts, SYNC_PARTS)
    if not 1 <= args.runs <= 1000 or not 0 <= (args.history or 0) <= 1_000_000:
        parser.error("--runs must be 1-1000 and --history 0-1,000,000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.disable(logging.WARNING)
    scenarios = SCENARIOS
    if args.history is not None or args.max_hours is not None:
        scenarios = [{"history": args.history or 20_000, "max_hours": args.max_hours or 3.0}]
    print(f"roomsync from {Path(etl.__file__).parent}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="roomsync-sim-") as tmp:
        for scenario in scenarios:
            one = argparse.Namespace(**{**vars(args), **scenario})
            print(
                f"account {one.history:,} sessions, {one.per_day:,}/day, live up to "
                f"{one.max_hours:g} h ({one.long_share:.0%} long), {one.runs} runs",
                flush=True,
            )
            t = simulate(one, Path(tmp))
            rows.append((one, t))
            print(
                f"  steady state: {t.requests:,} requests for a floor of {t.floor:,} "
                f"(x{t.requests / t.floor:.2f}, worst run x{t.worst:.2f}); list {t.list_pages:,}, "
                f"filter {t.filter_pages:,}, by-id {t.by_id:,}, bill {dict(t.bill)} "
                f"(floor {t.bill_floor:,}); exact after "
                f"{t.exact_runs}/{t.runs} runs, cost pending after {t.pending_runs}; "
                f"first sync {t.first[0]} requests (floor {t.first[1]}); backfill of exact ids: "
                f"{t.backfill} per id; --via-list: {t.via_list} per id; {t.seconds:.0f} s",
                flush=True,
            )
    print(json.dumps([{**vars(a), **vars(t)} for a, t in rows], default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
