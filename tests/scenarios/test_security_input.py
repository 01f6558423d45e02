"""Issue 13, input: values that make no sense are one-line errors (2 usage, 3 configuration),
never a traceback; ids in RFC 4122's forms only; a downgrade is never done without asking."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import PROJECT, TOKEN, Invoke

from etl.records import canonical_uuid
from etl.storage.migrate import current_revision, head_revision

SID = "51bcd77a-1751-4579-8e4d-c3a3578a60d8"


def assert_one_line_error(result: Result, code: int) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("roomsync: error: "), result.stderr
    assert "Traceback" not in result.output


def api_env(url: str = "sqlite:///unused.db") -> dict[str, str]:
    return {
        "SIGNALWIRE_SPACE": "http://127.0.0.1:9",
        "SIGNALWIRE_PROJECT_ID": PROJECT,
        "SIGNALWIRE_API_TOKEN": TOKEN,
        "DATABASE_URL": url,
    }


@pytest.mark.parametrize(
    "args",
    [
        ["fetch", SID, "--timeout", "nan"],
        ["fetch", SID, "--timeout", "inf"],
        ["fetch", SID, "--timeout", "1e300"],
        ["fetch", SID, "--backoff", "-inf"],
        ["fetch", SID, "--backoff", "NaN"],
        ["fetch", SID, "--rate-limit", "nan"],
        ["fetch", SID, "--rate-limit", "1e-320"],
        ["fetch", SID, "--rate-limit", "0.0009"],
        ["fetch", SID, "--concurrency", "1001"],
        ["fetch", SID, "--concurrency", "100000000000000000000"],
        ["backfill", "-", "--timeout", "nan"],
        ["sync", "--overlap", "nan"],
        ["sync", "--overlap", "inf"],
        ["sync", "--overlap", "1e300"],
        ["report", "--since", "0001-01-01T00:00:00+14:00"],
        ["report", "--until", "9999-12-31T23:59:59-14:00"],
        ["db", "downgrade", "base"],  # not on a terminal, no --yes
    ],
)
def test_senseless_values_are_one_line_usage_errors(
    args: list[str], tmp_path: Path, invoke: Invoke
) -> None:
    result = invoke(args, api_env(f"sqlite:///{tmp_path / 'x.db'}"))
    assert_one_line_error(result, 2)
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("backend", ["sqlite"])  # about options, not storage
def test_the_smallest_rate_limit_and_largest_concurrency_are_accepted(
    cli_env: dict[str, str], sessions: list[dict], invoke: Invoke
) -> None:
    args = ["fetch", sessions[0]["id"], "--rate-limit", "0.001", "--concurrency", "1000"]
    result = invoke(args, cli_env)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "space",
    [
        "http://127.0.0.1:99999",
        "http://127.0.0.1:0",
        "http://127.0.0.1:port",
        "javascript:alert(1)",
        "http://exa mple.com",
        "ftp://example.signalwire.com",
        "http://[::1",
        "example\x1b[2J",
    ],
)
def test_unusable_spaces_are_one_line_configuration_errors(space: str, invoke: Invoke) -> None:
    result = invoke(["fetch", SID], {**api_env(), "SIGNALWIRE_SPACE": space})
    assert_one_line_error(result, 3)
    assert "\x1b" not in result.output


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:pw-5ecret@db.example:notaport/roomsync",
        "postgresql://u:pw-5ecret@[::1/roomsync",
        "postgresql://u:pw-5ecret@[::1]:x/roomsync",
    ],
)
@pytest.mark.parametrize(
    "command", [["fetch", SID], ["db", "current"], ["db", "upgrade"], ["report"]]
)
def test_unusable_database_urls_are_one_line_configuration_errors(
    url: str, command: list[str], invoke: Invoke
) -> None:
    result = invoke(command, {**api_env(), "DATABASE_URL": url})
    assert_one_line_error(result, 3)
    assert "pw-5ecret" not in result.output


@pytest.mark.parametrize(
    "text",
    [
        SID,
        SID.upper(),
        "{" + SID + "}",
        "{" + SID.upper() + "}",
        "urn:uuid:" + SID,
        "URN:UUID:" + SID.upper(),
    ],
)
def test_ids_in_rfc_4122_forms_are_accepted(text: str) -> None:
    assert canonical_uuid(text) == SID


@pytest.mark.parametrize(
    "text",
    [
        "51bcd77a----175145798e4dc3a3578a60d8",
        "51bcd77a175145798e4dc3a3578a60d8",  # 32 hex digits: not one of RFC 4122's forms
        "５1bcd77a-1751-4579-8e4d-c3a3578a60d8",  # fullwidth digit
        "51bcd77a-1751-4579-8e4d-c3a3578a60d٨",  # Arabic-Indic digit
        "{" + SID,
        SID + "}",
        "urn:uuid:{" + SID + "}",
        "51bcd77a-1751-4579-8e4d-c3a3578a60d8-",
        " " + SID + "\n",
        "51bc-d77a-1751-4579-8e4dc3a3578a60d8",
    ],
)
def test_ids_in_other_forms_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        canonical_uuid(text)


@pytest.mark.parametrize("backend", ["sqlite"])  # refused before the database is used
def test_fetch_refuses_near_miss_ids_before_any_request(
    cli_env: dict[str, str], api: Any, invoke: Invoke
) -> None:
    result = invoke(["fetch", "51bcd77a----175145798e4dc3a3578a60d8"], cli_env)
    assert_one_line_error(result, 2)
    assert api.total_requests == 0


# --------------------------------------------------------------------------- downgrade


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_downgrade_without_yes_off_a_terminal_changes_nothing(
    migrated_url: str, invoke: Invoke
) -> None:
    result = invoke(["db", "downgrade", "base"], {"DATABASE_URL": migrated_url})
    assert_one_line_error(result, 2)
    assert "--yes" in result.stderr
    assert current_revision(migrated_url) == head_revision()
    assert "room_sessions" in table_names(migrated_url)
    done = invoke(["db", "downgrade", "base", "--yes"], {"DATABASE_URL": migrated_url})
    assert done.exit_code == 0, done.output
    assert current_revision(migrated_url) is None


def _on_a_terminal(url: str, answer: bytes) -> tuple[int, str]:
    """`roomsync db downgrade base` with a pseudo-terminal as stdin/stdout/stderr, answering
    the question with `answer`; returns the exit code and what the terminal showed."""
    leader, follower = pty.openpty()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": url}
    process = subprocess.Popen(
        [sys.executable, "-m", "etl", "db", "downgrade", "base"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        close_fds=True,
    )
    os.close(follower)
    shown = b""
    deadline = time.monotonic() + 30
    answered = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the other side closed: the process ended
                    break
                if not chunk:
                    break
                shown += chunk
                if not answered and b"[y/N]" in shown:
                    os.write(leader, answer)
                    answered = True
            elif process.poll() is not None:
                break
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    return code, shown.decode(errors="replace")


@pytest.mark.parametrize("backend", ["sqlite"])  # the question; the refusal runs on both
def test_downgrade_on_a_terminal_asks_first(migrated_url: str) -> None:
    code, shown = _on_a_terminal(migrated_url, b"n\n")
    assert code == 2 and "not confirmed" in shown
    assert current_revision(migrated_url) == head_revision()
    code, shown = _on_a_terminal(migrated_url, b"y\n")
    assert code == 0, shown
    assert current_revision(migrated_url) is None
