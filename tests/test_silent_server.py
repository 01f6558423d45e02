"""Issue 22, defect 4: a server that accepts the connection and never answers (plain HTTP, or
a TLS handshake that never completes) stops the run as unreachable after the first requests'
retries, instead of trying every id in turn; a server that answered before in the run and then
goes silent still gets the retries. Real processes, real loopback sockets; counts, no times."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest
from hostile_api import BY_ID, Gate, HostileAPI, Normal
from roomsync_proc import env_for_url, failures, roomsync, stored

from etl.fake_api import generate_sessions
from etl.storage.engines import make_engine
from etl.storage.migrate import upgrade

CONCURRENCY = 4
RETRIES = 2
ARGS = [
    "--timeout",
    "0.5",
    "--retries",
    str(RETRIES),
    "--backoff",
    "0.01",
    "--concurrency",
    str(CONCURRENCY),
    "--json",
]


class SilentServer:
    """Accepts every connection on loopback, reads what comes, and never writes a byte (no HTTP
    response, no TLS ServerHello). Counts the connections it accepted; bounded by `stop()`."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self._open: list[socket.socket] = []
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def _serve(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._listener, *self._open], [], [], 0.05)
            for sock in readable:
                if sock is self._listener:
                    with contextlib.suppress(BlockingIOError):
                        conn, _ = self._listener.accept()
                        conn.setblocking(False)
                        self._open.append(conn)
                        self.accepted += 1
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the client gave up and closed: forget it
                    self._open.remove(sock)
                    sock.close()

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in [*self._open, self._listener]:
            sock.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'silent.db'}"
    upgrade(url)
    return url


@pytest.fixture
def ids_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ids.txt"
    path.write_text("".join(f"{s['id']}\n" for s in generate_sessions(40, seed=221)))
    yield path


@pytest.mark.timeout(90)
@pytest.mark.parametrize("scheme", ["http", "https"], ids=["plain", "tls-handshake"])
def test_a_server_that_never_answers_stops_the_backfill_as_unreachable(
    sqlite_url: str, ids_path: Path, scheme: str
) -> None:
    with SilentServer() as server:
        env = env_for_url(f"{scheme}://127.0.0.1:{server.port}", sqlite_url)
        result = roomsync(["backfill", str(ids_path), *ARGS], env, timeout=60)
        attempts = server.accepted
    assert result.returncode == 3, result.stderr[-2000:]
    assert "SIGNALWIRE_SPACE" in result.one_line_error()
    # the first ids in flight, each with its attempts -- not 40 ids x 2 attempts
    assert 1 <= attempts <= CONCURRENCY * RETRIES, attempts
    engine = make_engine(sqlite_url)
    try:
        assert len(failures(engine)) <= CONCURRENCY
    finally:
        engine.dispose()


@pytest.mark.timeout(90)
def test_a_sync_against_a_server_that_never_answers_is_unreachable(sqlite_url: str) -> None:
    with SilentServer() as server:
        env = env_for_url(f"http://127.0.0.1:{server.port}", sqlite_url)
        result = roomsync(["sync", *ARGS], env, timeout=60)
        attempts = server.accepted
    assert result.returncode == 3, result.stderr[-2000:]
    assert "SIGNALWIRE_SPACE" in result.one_line_error()
    assert 1 <= attempts <= RETRIES, attempts  # one list request and its retries


@pytest.mark.timeout(90)
def test_a_server_that_answered_then_goes_silent_gets_the_retries(
    hostile_api: HostileAPI, sqlite_url: str, tmp_path: Path
) -> None:
    sessions = generate_sessions(6, seed=222)
    hostile_api.set_sessions(sessions)
    answered = 4
    hostile_api.queue(BY_ID, *[Normal() for _ in range(answered)])
    hostile_api.always(BY_ID, Gate(threading.Event()))  # headers never come
    path = tmp_path / "ids.txt"
    path.write_text("".join(f"{s['id']}\n" for s in sessions))
    args = [*ARGS]
    args[args.index("--concurrency") + 1] = "1"  # the answered ones come first, in file order
    # a normal answer must never hit the timeout, even on a loaded machine: only the silent ids
    # may time out (2 ids x 2 attempts x 2 s)
    args[args.index("--timeout") + 1] = "2"
    env = env_for_url(hostile_api.base_url, sqlite_url)
    result = roomsync(["backfill", str(path), *args], env, timeout=60)
    assert result.returncode == 1, result.stderr[-2000:]  # ids failed; not "unreachable"
    silent = len(sessions) - answered
    summary = result.summary()
    assert summary["inserted"] == answered and summary["failed"] == silent
    assert summary["retries"] == silent * (RETRIES - 1)  # every silent id had all its attempts
    assert len(hostile_api.requests_to(BY_ID)) == answered + silent * RETRIES
    engine = make_engine(sqlite_url)
    try:
        assert len(stored(engine)) == answered and len(failures(engine)) == silent
    finally:
        engine.dispose()
