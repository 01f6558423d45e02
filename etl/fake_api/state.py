"""The stand-in's state and controls: the sessions it serves, scripted faults, request counts."""

from __future__ import annotations

import base64
import binascii
import collections
import functools
import hashlib
import hmac
import ipaddress
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode

from . import data
from .data import (
    DEFAULT_PAGE_SIZE,
    LIST_PATH,
    MAX_PAGE_SIZE,
    RECORDINGS_PATH,
    ROOMS_PATH,
    VideoAccount,
    _newest_first,
    _shuffled,
    by_id_view,
    generate_sessions,
    list_view,
)
from .faults import (
    Fault,
    Response,
    _bad_types,
    _json_bytes,
    bad_item,
    error_response,
    parse_fault,
    validation_error,
)
from .server import COLLECTIONS, FILTERS, ListQuery, Server, _route, non_negative_int


class FakeSignalWire:
    """The stand-in API server; use `with FakeSignalWire(sessions) as fake: ...fake.base_url`.

    `sessions` (by id, list shape) is read on every request, so tests may mutate it directly.
    The rest of the bill (`account=generate_account(...)`, or the add_* controls) lives in
    `members` and `recordings` (session id -> items), `rooms` and `logs` (by id) and
    `discarded_logs` (log id -> discarded_at), read on every request too; the controls below
    (complete_session, leave_member, finish_recording, delete_log...) change them consistently.
    Faults scripted with `script`/`script_list`/`script_path` are consumed only by requests that
    pass auth.
    """

    def __init__(
        self,
        sessions: Iterable[dict[str, Any]] = (),
        *,
        project_id: str = "test-project",
        token: str = "test-token",
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        absolute_links: bool = False,
        shuffle_list: bool = False,
        on_request: Callable[[str], None] | None = None,
        count_paths: bool = True,
        account: VideoAccount | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`on_request(path)` is called as each authorised or not request starts (a benchmark
        records start times with it); `count_paths=False` keeps no per-path counter, for runs of
        millions of distinct ids. `account` adds its sessions and everything else it holds;
        `clock` (epoch seconds) dates the expiry of signed recording links."""
        if not ipaddress.IPv4Address(host).is_loopback:
            raise ValueError(f"the fake API serves on IPv4 loopback only, not {host!r}")
        self.sessions: dict[str, dict[str, Any]] = {}
        self.members: dict[str, list[dict[str, Any]]] = {}
        self.recordings: dict[str, list[dict[str, Any]]] = {}
        self.rooms: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, dict[str, Any]] = {}
        self.discarded_logs: dict[str, str] = {}
        self.clock = clock
        # Held by the controls and while a response reads the bill, so a test thread that
        # completes a session never shows a half-updated session to a request.
        self.data_lock = threading.RLock()
        for session in sessions:
            self.add_session(session)
        if account is not None:
            self.load(account)
        self.project_id = project_id
        self.token = token
        self.latency = latency
        self.host = host
        self.port = port
        self.absolute_links = absolute_links
        self.shuffle_list = shuffle_list
        self.on_request = on_request
        self.count_paths = count_paths
        self.requests: collections.Counter[str] = collections.Counter()
        self.total_requests = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._faults: dict[str, collections.deque[Fault]] = {}
        self._tokens: dict[str, tuple[str, int]] = {}  # token -> (list path, offset)
        self._token_for_offset: dict[tuple[str, int], str] = {}
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        """The server's root, e.g. http://127.0.0.1:54321; known once started."""
        if self._base_url is None:
            raise RuntimeError("the fake API is not started")
        return self._base_url

    def start(self) -> FakeSignalWire:
        """Bind and serve in a background thread.

        The short poll interval bounds how long `stop()` waits for the serving loop to notice;
        tests start and stop a server each, so it adds up.
        """
        if self._server is not None:
            raise RuntimeError("the fake API is already started")
        server = Server((self.host, self.port), self)
        self._server = server
        self._base_url = f"http://{self.host}:{server.server_port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"fake-signalwire-{server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, hang up open connections, release the port. Safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> FakeSignalWire:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- test controls

    def add_session(self, session: dict[str, Any]) -> None:
        """Store a (shallow) copy, so two fakes fed the same list never share a session."""
        self.sessions[str(session["id"])] = dict(session)

    def script(self, session_id: str, *faults: str) -> None:
        """Queue faults for GET /api/video/room_sessions/{session_id}.

        Each authorised request to that id consumes the next one; when the queue is empty the
        id is served normally (404 if unknown). Words are validated here: typos raise ValueError.
        """
        self._queue(session_id, [parse_fault(word) for word in faults])

    def script_list(self, *faults: str) -> None:
        """Queue faults for the list endpoint; "badtypes" breaks the first item of the page.

        "mismatch" has no meaning for a list and raises ValueError.
        """
        parsed = [parse_fault(word) for word in faults]
        if any(fault.kind == "mismatch" for fault in parsed):
            raise ValueError("the 'mismatch' fault applies to get-by-id only")
        self._queue(LIST_PATH, parsed)

    def script_path(self, path: str, *faults: str) -> None:
        """Queue faults for any endpoint by its path (query excluded), e.g.
        `/api/video/room_sessions/{id}/members` or `/api/video/logs`; every page of a list
        consumes one. "mismatch" names another session in the first item of a session's
        members or recordings, or another id in a body by id; lists of their own refuse it.
        """
        route = _route(path)
        if route is None:
            raise ValueError(f"the fake API serves no {path!r}")
        parsed = [parse_fault(word) for word in faults]
        if route in (LIST_PATH, *COLLECTIONS) and any(f.kind == "mismatch" for f in parsed):
            raise ValueError(f"the 'mismatch' fault has no meaning for the list {path}")
        self._queue(route, parsed)

    @property
    def in_flight(self) -> int:
        """Requests the server is handling now (a reply may reach the client just before its
        handler counts it done)."""
        with self._lock:
            return self._in_flight

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.total_requests = 0
            self.max_in_flight = self._in_flight

    def _queue(self, key: str, faults: list[Fault]) -> None:
        with self._lock:
            self._faults.setdefault(key, collections.deque()).extend(faults)

    # ----------------------------------------------------------------- used by the handler
    # (etl.fake_api.server asks these what to answer; tests use the controls above)

    def begin_request(self, path: str) -> None:
        if self.on_request is not None:
            self.on_request(path)
        with self._lock:
            if self.count_paths:
                self.requests[path] += 1
            self.total_requests += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def end_request(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def next_fault(self, route: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(route)
            return queue.popleft() if queue else None

    def authorized(self, header: str | None) -> bool:
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{self.project_id}:{self.token}".encode()
        return hmac.compare_digest(decoded, expected)

    def normal_response(self, route: str, path: str, query: str) -> Response:
        if route == LIST_PATH:
            return self._list_response(path, query, bad_types=False)
        if route.startswith("/"):
            return self._bill_response(path, query, alter=None)
        session = self.sessions.get(route)
        if session is None:
            return error_response(404)
        return Response(200, _json_bytes(by_id_view(session)))

    def altered_response(self, route: str, path: str, query: str, fault: Fault) -> Response:
        """200 with a body that is valid JSON but wrong: "mismatch" or "badtypes"."""
        if route == LIST_PATH:
            return self._list_response(path, query, bad_types=True)
        if route.startswith("/"):
            return self._bill_response(path, query, alter=fault.kind)
        view = by_id_view(self.sessions.get(route) or _stand_in(route))
        if fault.kind == "mismatch":
            return Response(200, _json_bytes({**view, "id": str(uuid.uuid4())}))
        return Response(200, _json_bytes(_bad_types({**view, "id": route})))

    def _list_response(self, path: str, query: str, *, bad_types: bool) -> Response:
        parsed = self._parse_list_query(query)
        if isinstance(parsed, Response):
            return parsed
        ordered = _shuffled if self.shuffle_list else _newest_first
        matching = ordered(
            s
            for s in list(self.sessions.values())
            if all(s.get(field) == value for field, value in parsed.filters)
        )
        page = [list_view(s) for s in matching[parsed.offset : parsed.offset + parsed.page_size]]
        if bad_types and page:
            page = [_bad_types(page[0]), *page[1:]]
        links = self._links(path, query, parsed, total=len(matching))
        return Response(200, _json_bytes({"links": links, "data": page}))

    def _parse_list_query(
        self, query: str, path: str = LIST_PATH, carry: Sequence[str] | None = None
    ) -> ListQuery | Response:
        """Paging of any list: page_size, and page_number with a token issued for `path`.
        `carry` names the parameters every page link repeats (default: the session filters)."""
        params = _params(query)
        page_size = non_negative_int(params.get("page_size", str(DEFAULT_PAGE_SIZE)))
        if page_size is None or not 1 <= page_size <= MAX_PAGE_SIZE:
            message = f"page_size must be between 1 and {MAX_PAGE_SIZE}"
            return validation_error(message, "page_size")
        page_number = non_negative_int(params.get("page_number", "0"))
        if page_number is None:
            return validation_error("page_number must be a non-negative integer", "page_number")
        token = params.get("page_token")
        if token is None:
            if page_number > 0:
                message = "page_token is required when page_number is greater than 0"
                return validation_error(message, "page_token")
            offset = 0
        else:
            with self._lock:
                found = self._tokens.get(token)
            if found is None or found[0] != path:
                return validation_error("page_token is invalid or expired", "page_token")
            offset = found[1]
        filters = tuple((field, params[name]) for name, field in FILTERS if name in params)
        names = [name for name, _ in FILTERS] if carry is None else carry
        kept = tuple((name, params[name]) for name in names if name in params)
        return ListQuery(page_size, offset, filters, kept)

    def _page_token(self, offset: int, path: str = LIST_PATH) -> str:
        """A random opaque token per list and offset (reused, so the table stays small)."""
        with self._lock:
            token = self._token_for_offset.get((path, offset))
            if token is None:
                token = "PA" + uuid.uuid4().hex
                self._token_for_offset[(path, offset)] = token
                self._tokens[token] = (path, offset)
            return token

    def _link(self, params: Sequence[tuple[str, str | int]], path: str = LIST_PATH) -> str:
        link = f"{path}?{urlencode(params)}"
        return self.base_url + link if self.absolute_links else link

    def _links(self, path: str, query: str, parsed: ListQuery, total: int) -> dict[str, str]:
        size = parsed.page_size
        carried: list[tuple[str, str | int]] = list(parsed.carry)
        self_link = path + (f"?{query}" if query else "")
        links = {
            "self": self.base_url + self_link if self.absolute_links else self_link,
            "first": self._link([("page_size", size), *carried], path),
        }
        if parsed.offset + size < total:
            after = parsed.offset + size
            token = self._page_token(after, path)
            params: list[tuple[str, str | int]] = [
                ("page_number", after // size),
                ("page_size", size),
                ("page_token", token),
            ]
            links["next"] = self._link([*params, *carried], path)
        if parsed.offset > 0:
            before = max(0, parsed.offset - size)
            params = [("page_number", before // size), ("page_size", size)]
            if before > 0:
                params.append(("page_token", self._page_token(before, path)))
            links["prev"] = self._link([*params, *carried], path)
        return links

    # ----------------------------------------------------------------- bill: test controls

    def load(self, account: VideoAccount) -> None:
        """Serve `account`: its sessions and copies of everything else it holds."""
        with self.data_lock:
            for session in account.sessions:
                self.add_session(session)
            for session_id, members in account.members.items():
                self.members[session_id] = [dict(m) for m in members]
            for session_id, recordings in account.recordings.items():
                self.recordings[session_id] = [dict(r) for r in recordings]
            for room in account.rooms:
                self.add_room(room)
            for entry in account.logs:
                self.add_log(entry)
            self.discarded_logs.update(account.discarded_logs)

    def complete_session(self, session_id: str, at: datetime | None = None) -> dict[str, Any]:
        """End a live session at `at` (default now) as the vendor would show it: members still
        in the room leave, unfinished recordings complete, the session gets its end, duration,
        final cost (the sum of its members') and a newer updated_at, and its log entry its
        status, end and itemised charge."""
        with self.data_lock:
            session = self.sessions[session_id]
            start = data.parse_time(session.get("start_time") or session["created_at"])
            end = max(_moment(at), start)
            for member in self.members.get(session_id, []):
                if member["leave_time"] is None:
                    data.end_member(member, end)
            for recording in self.recordings.get(session_id, []):
                if recording["status"] != "completed":
                    data.end_recording(recording, end, session.get("quality"))
            cost = sum(m["cost_in_dollars"] or 0 for m in self.members.get(session_id, []))
            session.update(
                status="completed",
                end_time=data.iso(end),
                duration=data.whole_seconds(start, data.parse_time(data.iso(end))),
                updated_at=data.iso(max(end, data.parse_time(session["updated_at"]))),
                cost_in_dollars=data.money(cost),
                preview_url=None,
            )
            self._refresh_log(session_id)
            return session

    def add_member(
        self,
        session_id: str,
        *,
        name: str | None = None,
        at: datetime | None = None,
        member_id: str | None = None,
    ) -> dict[str, Any]:
        """A member joins the session at `at` (default now): no leave_time, duration null."""
        with self.data_lock:
            member = data.new_member(member_id or str(uuid.uuid4()), session_id, name, _moment(at))
            self.members.setdefault(session_id, []).append(member)
            return member

    def leave_member(self, member_id: str, at: datetime | None = None) -> dict[str, Any]:
        """The member leaves at `at` (default now): leave_time, duration and cost set."""
        with self.data_lock:
            member = self._find(self.members, member_id)
            data.end_member(member, _moment(at))
            return member

    def add_recording(
        self, session_id: str, *, at: datetime | None = None, recording_id: str | None = None
    ) -> dict[str, Any]:
        """A recording starts at `at` (default now): status `recording`, no uri yet."""
        with self.data_lock:
            recording = data.new_recording(
                recording_id or str(uuid.uuid4()), session_id, _moment(at)
            )
            self.recordings.setdefault(session_id, []).append(recording)
            return recording

    def finish_recording(
        self, recording_id: str, at: datetime | None = None, *, processing: bool = False
    ) -> dict[str, Any]:
        """Stop the recording at `at` (default now); `processing` leaves the file not ready
        (no size, cost 0), otherwise it completes with size and cost (and a signed uri)."""
        with self.data_lock:
            recording = self._find(self.recordings, recording_id)
            session = self.sessions.get(recording["room_session_id"], {})
            data.end_recording(
                recording, _moment(at), session.get("quality"), processing=processing
            )
            self._refresh_log(recording["room_session_id"])
            return recording

    def add_room(self, room: dict[str, Any]) -> None:
        with self.data_lock:
            self.rooms[str(room["id"])] = dict(room)

    def delete_room(self, room_id: str) -> None:
        with self.data_lock:
            del self.rooms[room_id]

    def add_log(self, entry: dict[str, Any]) -> None:
        with self.data_lock:
            self.logs[str(entry["id"])] = dict(entry)

    def make_log(self, session_id: str, *, log_id: str | None = None) -> dict[str, Any]:
        """Add the log entry of a session as it stands (charges from its members/recordings)."""
        with self.data_lock:
            entry = data.log_entry(
                log_id or str(uuid.uuid4()),
                self.sessions[session_id],
                self.recordings.get(session_id, []),
            )
            self.logs[entry["id"]] = entry
            return entry

    def log_of(self, session_id: str) -> dict[str, Any] | None:
        """The log entry whose url names the session, if any."""
        with self.data_lock:
            suffix = f"/room_sessions/{session_id}"
            return next((e for e in self.logs.values() if e["url"].endswith(suffix)), None)

    def delete_log(self, log_id: str, at: datetime | None = None) -> None:
        """The entry is deleted upstream: listed only with include_deleted, as
        {id, discarded_at, created_at}."""
        with self.data_lock:
            if log_id not in self.logs:
                raise KeyError(log_id)
            self.discarded_logs[log_id] = data.iso(_moment(at))

    def restore_log(self, log_id: str) -> None:
        with self.data_lock:
            self.discarded_logs.pop(log_id, None)

    def signed_uri(self, recording_id: str, ttl: int = data.DEFAULT_MEDIA_TTL) -> str:
        """A temporary link to the recording's file, valid `ttl` seconds from the clock."""
        expires = int(self.clock()) + ttl
        message = f"{recording_id}:{expires}".encode()
        signature = hmac.new(self.token.encode(), message, hashlib.sha256).hexdigest()
        return (
            f"{data.RECORDING_URI_PREFIX}{recording_id}.mp4?Expires={expires}&Signature={signature}"
        )

    @staticmethod
    def _find(groups: dict[str, list[dict[str, Any]]], item_id: str) -> dict[str, Any]:
        for items in groups.values():
            for item in items:
                if item["id"] == item_id:
                    return item
        raise KeyError(item_id)

    def _refresh_log(self, session_id: str) -> None:
        entry = self.log_of(session_id)
        session = self.sessions.get(session_id)
        if entry is not None and session is not None:
            data.refresh_log(entry, session, self.recordings.get(session_id, []))

    # ----------------------------------------------------------------- bill: serving

    def _bill_response(self, path: str, query: str, alter: str | None) -> Response:
        """Members and recordings of a session; rooms, recordings and logs, listed or by id.
        `alter` is a fault word ("badtypes" or "mismatch") to apply to the body."""
        with self.data_lock:
            if path in COLLECTIONS:
                return self._collection(path, query, alter)
            parent, _, last = path.rpartition("/")
            if parent.startswith(LIST_PATH + "/"):
                session_id = parent.rpartition("/")[2]
                return self._children(path, query, session_id, last, alter)
            return self._one(parent, last, query, alter)

    def _children(
        self, path: str, query: str, session_id: str, kind: str, alter: str | None
    ) -> Response:
        if session_id not in self.sessions:
            return error_response(404)
        params = _params(query)
        if kind == "members":
            members = self.members.get(session_id, [])
            return self._page(path, query, members, "members", alter, (), dict)
        ttl = _media_ttl(params, minimum=1)
        if isinstance(ttl, Response):
            return ttl
        recordings = self.recordings.get(session_id, [])
        signed = functools.partial(self._recording_view, ttl=ttl)
        return self._page(path, query, recordings, "recordings", alter, ("media_ttl",), signed)

    def _collection(self, path: str, query: str, alter: str | None) -> Response:
        params = _params(query)
        if path == RECORDINGS_PATH:
            ttl = _media_ttl(params, minimum=1)
            if isinstance(ttl, Response):
                return ttl
            every = _newest_first(r for items in self.recordings.values() for r in items)
            signed = functools.partial(self._recording_view, ttl=ttl)
            return self._page(path, query, every, "recordings", alter, ("media_ttl",), signed)
        if path == ROOMS_PATH:
            rooms = self._rooms_listed(params)
            if isinstance(rooms, Response):
                return rooms
            names = ("include_active_session", "starts_after", "ends_before")
            return self._page(path, query, rooms, "rooms", alter, names, dict)
        entries = self._logs_listed(params)
        if isinstance(entries, Response):
            return entries
        carry = ("created_after", "created_before", "created_on", "include_deleted")
        return self._page(path, query, entries, "logs", alter, carry, dict)

    def _one(self, collection: str, item_id: str, query: str, alter: str | None) -> Response:
        params = _params(query)
        body: dict[str, Any] | None
        if collection == RECORDINGS_PATH:
            ttl = _media_ttl(params, minimum=0)
            if isinstance(ttl, Response):
                return ttl
            found = next(
                (r for items in self.recordings.values() for r in items if r["id"] == item_id),
                None,
            )
            body = None if found is None else self._recording_view(found, ttl)
            kind = "recordings"
        elif collection == ROOMS_PATH:
            active = _bool_param(params, "include_active_session")
            if isinstance(active, Response):
                return active
            room = self.rooms.get(item_id) or next(
                (r for r in self.rooms.values() if r["name"] == item_id), None
            )  # the vendor serves /rooms/{id} and /rooms/{name} on one path
            live = self._live_sessions_by_room() if active else None
            body = None if room is None else self._room_view(room, live)
            kind = "rooms"
        else:
            entry = self.logs.get(item_id)
            body = None if entry is None or item_id in self.discarded_logs else dict(entry)
            kind = "logs"
        if body is None:
            return error_response(404)
        if alter == "mismatch":
            body = {**body, "id": str(uuid.uuid4())}
        elif alter is not None:
            body = bad_item(kind, body)
        return Response(200, _json_bytes(body))

    def _page(
        self,
        path: str,
        query: str,
        items: list[dict[str, Any]],
        kind: str,
        alter: str | None,
        carry: Sequence[str],
        view: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> Response:
        """One page of `items`, each shown through `view` (a copy, or a signed recording)."""
        parsed = self._parse_list_query(query, path, carry)
        if isinstance(parsed, Response):
            return parsed
        ordered = _shuffled(items) if self.shuffle_list else items
        page = [view(item) for item in ordered[parsed.offset : parsed.offset + parsed.page_size]]
        if alter is not None and page:
            first = page[0]
            if alter == "mismatch":
                page[0] = {**first, "room_session_id": str(uuid.uuid4())}
            else:
                page[0] = bad_item(kind, first)
        links = self._links(path, query, parsed, total=len(ordered))
        return Response(200, _json_bytes({"links": links, "data": page}))

    def _recording_view(self, recording: dict[str, Any], ttl: int) -> dict[str, Any]:
        """The recording as served: a freshly signed `uri` once completed, else null."""
        ready = recording.get("status") == "completed"
        uri = self.signed_uri(recording["id"], ttl) if ready else None
        view = {key: value for key, value in recording.items() if key != "created_at"}
        view["uri"] = uri
        view["created_at"] = recording["created_at"]
        view["updated_at"] = recording["updated_at"]
        return view

    def _rooms_listed(self, params: dict[str, str]) -> list[dict[str, Any]] | Response:
        """Rooms, newest first. `starts_after`/`ends_before` keep rooms whose join_from is after
        / join_until is before the moment (the spec names the filters without defining them:
        an inference); a date is its midnight UTC."""
        active = _bool_param(params, "include_active_session")
        if isinstance(active, Response):
            return active
        tests: list[Callable[[dict[str, Any]], bool]] = []
        for name, field, after in (
            ("starts_after", "join_from", True),
            ("ends_before", "join_until", False),
        ):
            bound = _time_param(params, name)
            if isinstance(bound, Response):
                return bound
            if bound is not None:
                tests.append(_compare(field, bound[0], after))
        rooms = [r for r in _newest_first(self.rooms.values()) if all(t(r) for t in tests)]
        live = self._live_sessions_by_room() if active else None
        return [self._room_view(r, live) for r in rooms]

    def _live_sessions_by_room(self) -> dict[str, dict[str, Any]]:
        """The newest in-progress session of each room id."""
        live: dict[str, dict[str, Any]] = {}
        for session in _newest_first(self.sessions.values()):
            room_id = session.get("room_id")
            if session.get("status") == "in-progress" and room_id is not None:
                live.setdefault(room_id, session)
        return live

    @staticmethod
    def _room_view(room: dict[str, Any], live: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
        """The room; with `live` (include_active_session) its active session, if it has one."""
        view = dict(room)
        session = None if live is None else live.get(room["id"])
        if session is not None:
            view["active_session"] = {
                key: session[key] for key in _ACTIVE_SESSION_FIELDS if session.get(key) is not None
            }
        return view

    def _logs_listed(self, params: dict[str, str]) -> list[dict[str, Any]] | Response:
        """Log entries, newest first, within the date filters; deleted ones only with
        include_deleted, as {id, discarded_at, created_at}.

        The filters' semantics are the spec's words read literally (an inference): a moment is
        exclusive (`created_after=T`: created_at > T; `created_before=T`: created_at < T); a
        date (YYYY-MM-DD) is its whole UTC day (after the day, before the day, on the day);
        `created_on` with a moment means that moment's UTC day.
        """
        deleted = _bool_param(params, "include_deleted")
        if isinstance(deleted, Response):
            return deleted
        tests: list[Callable[[datetime], bool]] = []
        for name in ("created_after", "created_before", "created_on"):
            bound = _time_param(params, name)
            if isinstance(bound, Response):
                return bound
            if bound is not None:
                tests.append(_log_filter(name, *bound))
        entries = []
        for entry in _newest_first(self.logs.values()):
            if not all(test(data.parse_time(entry["created_at"])) for test in tests):
                continue
            gone = self.discarded_logs.get(entry["id"])
            if gone is None:
                entries.append(dict(entry))
            elif deleted:
                entries.append(
                    {"id": entry["id"], "discarded_at": gone, "created_at": entry["created_at"]}
                )
        return entries


def _stand_in(session_id: str) -> dict[str, Any]:
    """A plausible session for faults scripted on an id the fake does not hold."""
    seed = int.from_bytes(hashlib.blake2b(session_id.encode(), digest_size=8).digest(), "big")
    return generate_sessions(1, seed=seed)[0]


# --------------------------------------------------------------------------- query parameters

_ACTIVE_SESSION_FIELDS = (
    "id", "room_id", "name", "display_name", "join_from", "join_until", "remove_at",
    "remove_after_seconds_elapsed", "layout", "max_members", "fps", "quality", "start_time",
    "end_time", "duration", "status", "record_on_start", "enable_room_previews", "preview_url",
)  # fmt: skip
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_DAY = timedelta(days=1)


def _params(query: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(query, keep_blank_values=True).items()}


def _moment(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("naive datetime given to the fake API")
    return at.astimezone(UTC)


def _bool_param(params: dict[str, str], name: str) -> bool | None | Response:
    value = params.get(name)
    if value is None:
        return None
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    return validation_error(f"{name} must be true or false", name)


def _time_param(params: dict[str, str], name: str) -> tuple[datetime, bool] | None | Response:
    """(moment, is_date) of a date (YYYY-MM-DD, its midnight UTC) or an ISO 8601 date-time."""
    value = params.get(name)
    if value is None:
        return None
    try:
        if _DATE.fullmatch(value):
            return datetime.fromisoformat(value).replace(tzinfo=UTC), True
        moment = datetime.fromisoformat(value)
    except ValueError:
        return validation_error(f"{name} must be a date or an ISO 8601 date-time", name)
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)), False


def _log_filter(name: str, moment: datetime, is_date: bool) -> Callable[[datetime], bool]:
    if name == "created_on":
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return lambda created: day <= created < day + _DAY
    if name == "created_after":
        if is_date:
            return lambda created: created >= moment + _DAY
        return lambda created: created > moment
    return lambda created: created < moment


def _compare(field: str, bound: datetime, after: bool) -> Callable[[dict[str, Any]], bool]:
    def test(room: dict[str, Any]) -> bool:
        value = room.get(field)
        if not isinstance(value, str):
            return False
        moment = data.parse_time(value)
        return moment > bound if after else moment < bound

    return test


def _media_ttl(params: dict[str, str], minimum: int) -> int | Response:
    """media_ttl in seconds: at least 1 on lists, 0 allowed by id (the spec's bounds)."""
    value = params.get("media_ttl")
    if value is None:
        return data.DEFAULT_MEDIA_TTL
    ttl = non_negative_int(value)
    if ttl is None or ttl < minimum or ttl > 2**31 - 1:
        return validation_error(f"media_ttl must be an integer of at least {minimum}", "media_ttl")
    return ttl
