"""Log lines: text with a timestamp and level, or one JSON object per line with fields; retries
logged once each; library chatter out; -q; no secrets. Real stand-in API over loopback."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import pytest
from click.testing import Result
from conftest import TOKEN, Invoke
from sqlalchemy.engine import make_url

from etl.fake_api import FakeSignalWire

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) ")


def json_lines(result: Result) -> list[dict[str, Any]]:
    """Every stderr line, each parsed as one JSON object (fails on any other line)."""
    return [json.loads(line) for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_json_logs_one_object_per_line_with_retry_fields(
    cli_env: dict[str, str],
    api: FakeSignalWire,
    sessions: list[dict],
    migrated_url: str,
    invoke: Invoke,
) -> None:
    ids = [s["id"] for s in sessions[:4]]
    api.script(ids[0], "429:0.01", "503")
    api.script(ids[1], "reset")
    args = ["fetch", *ids, "--log-format", "json", "--backoff", "0.01", "--json"]
    result = invoke(args, cli_env)
    assert result.exit_code == 0, result.output
    lines = json_lines(result)
    for line in lines:
        assert {"time", "level", "message"} <= set(line)
        assert datetime.fromisoformat(line["time"]).utcoffset().total_seconds() == 0
        assert line["time"].endswith("Z")
    retries = [line for line in lines if line["message"].startswith("retrying")]
    assert all(line["level"] == "WARNING" for line in retries)
    assert sorted((r["session_id"], r["attempt"], r["status"]) for r in retries) == sorted(
        [(ids[0], 1, 429), (ids[0], 2, 503), (ids[1], 1, "RemoteProtocolError")]
    )
    assert all(isinstance(r["wait_s"], float | int) and r["wait_s"] >= 0 for r in retries)
    assert {r["command"] for r in retries} == {"fetch"}
    assert len({r["run_id"] for r in retries}) == 1
    summary = json.loads(result.stdout)
    assert summary["retries"] == 3 and summary["throttled"] == 1
    (logged,) = [line for line in lines if line.get("requested") == 4]
    assert logged["retries"] == 3 and logged["throttled"] == 1 and logged["inserted"] == 4
    assert logged["command"] == "fetch" and logged["run_id"] == retries[0]["run_id"]


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_text_lines_have_time_and_level_and_env_picks_json(
    cli_env: dict[str, str], api: FakeSignalWire, sessions: list[dict], invoke: Invoke
) -> None:
    api.script(sessions[0]["id"], "503")
    result = invoke(["fetch", sessions[0]["id"], "--backoff", "0.01"], cli_env)
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert lines and all(TEXT_LINE.match(line) for line in lines), lines
    assert any("WARNING roomsync: retrying session" in line for line in lines)
    as_json = invoke(["fetch", sessions[1]["id"]], cli_env | {"ROOMSYNC_LOG_FORMAT": "json"})
    assert as_json.exit_code == 0 and json_lines(as_json)
    bad = invoke(["fetch", sessions[1]["id"]], cli_env | {"ROOMSYNC_LOG_FORMAT": "xml"})
    assert bad.exit_code == 2


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_quiet_shows_errors_only(
    cli_env: dict[str, str], api: FakeSignalWire, sessions: list[dict], invoke: Invoke
) -> None:
    ids = [s["id"] for s in sessions[:2]]
    api.script(ids[0], "503")
    ok = invoke(["fetch", *ids, "-q", "--backoff", "0.01"], cli_env)
    assert ok.exit_code == 0 and ok.stderr == ""
    auth = invoke(["fetch", ids[1], "-q"], cli_env | {"SIGNALWIRE_API_TOKEN": "wrong-token-x"})
    assert auth.exit_code == 3 and "refused the credentials" in auth.stderr


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_library_chatter_stays_out(
    cli_env: dict[str, str], sessions: list[dict], db_url: str, invoke: Invoke
) -> None:
    up = invoke(["db", "upgrade", "-v", "--log-format", "json"], {"DATABASE_URL": db_url})
    assert up.exit_code == 0
    loggers = {line.get("logger", "") for line in json_lines(up)}
    assert not any(name.startswith(("alembic", "sqlalchemy")) for name in loggers)
    plain = invoke(["fetch", sessions[0]["id"], "--log-format", "json"], cli_env)
    assert not any(line["logger"].startswith("httpx") for line in json_lines(plain))
    verbose = invoke(["fetch", sessions[1]["id"], "--log-format", "json", "-v"], cli_env)
    lines = json_lines(verbose)
    assert any(line["logger"] == "httpx" for line in lines)  # -v: each request
    assert not any(line["logger"].startswith("alembic") for line in lines)


def test_secrets_never_in_any_log_line(
    cli_env: dict[str, str],
    api: FakeSignalWire,
    sessions: list[dict],
    migrated_url: str,
    invoke: Invoke,
) -> None:
    ids = [s["id"] for s in sessions[:3]]
    for fmt in ("json", "text"):
        api.script(ids[0], "429", "500", "reset")
        api.script(ids[1], "badtypes")
        result = invoke(["fetch", *ids, "-v", "--backoff", "0.01", "--log-format", fmt], cli_env)
        assert result.exit_code == 1
        assert TOKEN not in result.output
        password = make_url(migrated_url).password
        assert not password or password not in result.output
    refused = invoke(
        ["sync", "-v", "--log-format", "json"], cli_env | {"SIGNALWIRE_API_TOKEN": "s3cr3t-tok"}
    )
    assert refused.exit_code == 3 and "s3cr3t-tok" not in refused.output


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_json_error_goes_to_stdout_with_exit_code(
    cli_env: dict[str, str], sessions: list[dict], invoke: Invoke
) -> None:
    env = cli_env | {"SIGNALWIRE_PROJECT_ID": ""}
    result = invoke(["fetch", sessions[0]["id"], "--json", "--log-format", "json"], env)
    assert result.exit_code == 3
    assert json.loads(result.stdout) == {
        "error": "SIGNALWIRE_PROJECT_ID is not set",
        "exit_code": 3,
    }
    (line,) = json_lines(result)
    assert line["level"] == "ERROR" and line["exit_code"] == 3
    usage = invoke(["backfill", "--json"], cli_env)  # neither FILE nor --retry-failed
    assert usage.exit_code == 2 and json.loads(usage.stdout)["exit_code"] == 2
