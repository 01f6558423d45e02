"""The command line end to end: real stand-in over loopback, real migrated databases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import PROJECT, TOKEN, Invoke, table_rows
from sqlalchemy.engine import make_url

from etl import __version__
from etl.cli import main
from etl.fake_api import FakeSignalWire
from etl.storage.migrate import head_revision
from etl.storage.schema import room_sessions

UNKNOWN = "00000000-0000-4000-8000-00000000000b"


def summary_of(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout)


def write_ids(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def assert_no_secrets(result: Result, url: str) -> None:
    text = result.output
    assert TOKEN not in text
    password = make_url(url).password
    if password:
        assert password not in text


def test_fetch_one_id(
    cli_env: dict[str, str], sessions: list[dict], migrated_url: str, invoke: Invoke
) -> None:
    result = invoke(["fetch", sessions[0]["id"], "--json"], cli_env)
    assert result.exit_code == 0, result.output
    summary = summary_of(result)
    assert summary["requested"] == 1 and summary["inserted"] == 1
    assert set(summary) >= {
        "requested",
        "inserted",
        "updated",
        "unchanged",
        "not_found",
        "failed",
        "elapsed_s",
        "failed_ids",
    }
    assert len(table_rows(migrated_url, room_sessions)) == 1


def test_backfill_file_then_rerun_is_unchanged(
    cli_env: dict[str, str], sessions: list[dict], tmp_path: Path, migrated_url: str, invoke: Invoke
) -> None:
    ids = [s["id"] for s in sessions]
    lines = ["# exported ids", "", *ids, ids[0].upper(), UNKNOWN]
    path = write_ids(tmp_path, lines)
    first = invoke(["backfill", path, "--json", "--with", "none"], cli_env)
    assert first.exit_code == 0, first.output
    assert summary_of(first) | {"elapsed_s": 0} == {
        "command": "backfill",
        "run_id": 1,
        "run_skipped": False,
        "exit_code": 0,
        "dry_run": False,
        "requested": len(ids) + 1,
        "inserted": len(ids),
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "not_found": 1,
        "failed": 0,
        "elapsed_s": 0,
        "failed_ids": [],
        "retries": 0,
        "throttled": 0,
        "interrupted": None,
        "errors": [],
        "bill": None,  # --with none
    }
    again = invoke(["backfill", path, "--json"], cli_env)
    assert summary_of(again)["unchanged"] == len(ids)
    assert len(table_rows(migrated_url, room_sessions)) == len(ids)


def test_backfill_from_stdin_with_human_summary(
    cli_env: dict[str, str], sessions: list[dict], invoke: Invoke
) -> None:
    stdin = "\n".join(s["id"] for s in sessions[:3])
    result = invoke(["backfill", "-"], cli_env, stdin=stdin)
    assert result.exit_code == 0, result.output
    assert "3 requested: 3 inserted" in result.stdout  # the result on stdout (issue 20)
    assert "3 ids" in result.stderr and "3 inserted" in result.stderr


def test_invalid_lines_stop_before_any_request(
    cli_env: dict[str, str],
    api: FakeSignalWire,
    sessions: list[dict],
    tmp_path: Path,
    invoke: Invoke,
) -> None:
    path = write_ids(tmp_path, [sessions[0]["id"], "nope", "12345"])
    result = invoke(["backfill", path], cli_env)
    assert result.exit_code == 2
    assert "line 2: 'nope'" in result.stderr and "line 3: '12345'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert api.total_requests == 0
    skipped = invoke(["backfill", path, "--skip-invalid", "--json"], cli_env)
    assert skipped.exit_code == 0 and summary_of(skipped)["inserted"] == 1


def test_invalid_argument_to_fetch_is_exit_2(
    cli_env: dict[str, str], api: FakeSignalWire, invoke: Invoke
) -> None:
    result = invoke(["fetch", "not-a-uuid"], cli_env)
    assert result.exit_code == 2 and "argument 1" in result.stderr
    assert api.total_requests == 0


def test_missing_file_is_exit_2(cli_env: dict[str, str], tmp_path: Path, invoke: Invoke) -> None:
    result = invoke(["backfill", str(tmp_path / "missing.txt")], cli_env)
    assert result.exit_code == 2 and "cannot read" in result.stderr


def test_failed_ids_exit_1_and_rerun_retries_them(
    cli_env: dict[str, str],
    api: FakeSignalWire,
    sessions: list[dict],
    tmp_path: Path,
    invoke: Invoke,
) -> None:
    ids = [s["id"] for s in sessions[:5]]
    api.script(ids[2], *["502"] * 3)
    path = write_ids(tmp_path, ids)
    args = ["backfill", path, "--json", "--retries", "2", "--backoff", "0.01"]
    first = invoke(args, cli_env)
    assert first.exit_code == 1
    assert summary_of(first)["failed_ids"] == [ids[2]]
    second = invoke(args, cli_env)
    assert second.exit_code == 0
    assert summary_of(second)["inserted"] == 1 and summary_of(second)["unchanged"] == 4


def test_auth_failure_is_exit_3_without_the_token(
    cli_env: dict[str, str], sessions: list[dict], migrated_url: str, invoke: Invoke
) -> None:
    env = cli_env | {"SIGNALWIRE_API_TOKEN": "wrong-secret-token-1234"}
    result = invoke(["fetch", sessions[0]["id"], "-v"], env)
    assert result.exit_code == 3
    assert "SIGNALWIRE_API_TOKEN" in result.stderr
    assert "wrong-secret-token-1234" not in result.output
    assert len(table_rows(migrated_url, room_sessions)) == 0


@pytest.mark.parametrize(
    "missing", ["SIGNALWIRE_SPACE", "SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_API_TOKEN"]
)
def test_missing_setting_is_exit_3_naming_it(
    cli_env: dict[str, str], sessions: list[dict], missing: str, invoke: Invoke
) -> None:
    env = cli_env | {missing: ""}
    result = invoke(["fetch", sessions[0]["id"]], env)
    assert result.exit_code == 3
    assert result.stderr.strip() == f"roomsync: error: {missing} is not set"


def test_plain_http_to_a_remote_host_is_refused(
    cli_env: dict[str, str], sessions: list[dict], invoke: Invoke
):
    env = cli_env | {"SIGNALWIRE_SPACE": "http://example.signalwire.com"}
    result = invoke(["fetch", sessions[0]["id"]], env)
    assert result.exit_code == 3 and "use https" in result.stderr


def test_unmigrated_database_is_exit_3(
    cli_env: dict[str, str], sessions: list[dict], migrated_url: str, invoke: Invoke
) -> None:
    from etl.storage.migrate import downgrade

    downgrade(migrated_url, "base")
    result = invoke(["fetch", sessions[0]["id"]], cli_env)
    assert result.exit_code == 3 and "roomsync db upgrade" in result.stderr
    assert_no_secrets(result, migrated_url)


def test_secrets_never_printed_even_verbose_with_failures(
    cli_env: dict[str, str],
    api: FakeSignalWire,
    sessions: list[dict],
    migrated_url: str,
    invoke: Invoke,
) -> None:
    api.script(sessions[0]["id"], "badtypes")
    api.script(sessions[1]["id"], "429", "500", "reset")
    ids = [s["id"] for s in sessions[:3]]
    result = invoke(["fetch", *ids, "-v", "--backoff", "0.01"], cli_env)
    assert result.exit_code == 1
    assert_no_secrets(result, migrated_url)


def test_db_commands_up_current_down(db_url: str, invoke: Invoke) -> None:
    env = {"DATABASE_URL": db_url}
    before = invoke(["db", "current"], env)
    if db_url.startswith("sqlite"):  # no file yet: said so, and none is created (read-only)
        assert before.exit_code == 3 and "no database at" in before.stderr
    else:
        assert before.stdout.strip() == "base"
    up = invoke(["db", "upgrade"], env)
    assert up.exit_code == 0, up.output
    assert invoke(["db", "current"], env).stdout.strip().endswith("(head)")
    down = invoke(["db", "downgrade", "base", "--yes"], env)
    assert down.exit_code == 0
    assert invoke(["db", "current"], env).stdout.strip() == "base"
    assert_no_secrets(up, db_url)


def test_bad_database_url_is_a_one_line_error(
    cli_env: dict[str, str], sessions: list[dict], invoke: Invoke
):
    env = cli_env | {"DATABASE_URL": "nosuchdialect://x/y"}
    result = invoke(["fetch", sessions[0]["id"]], env)
    assert result.exit_code == 3
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_postgresql_is_exit_3_with_password_masked(
    sessions: list[dict], invoke: Invoke
) -> None:
    with FakeSignalWire(sessions, project_id=PROJECT, token=TOKEN) as api:
        env = {
            "SIGNALWIRE_SPACE": api.base_url,
            "SIGNALWIRE_PROJECT_ID": PROJECT,
            "SIGNALWIRE_API_TOKEN": TOKEN,
            "DATABASE_URL": "postgresql://someone:pg-secret-pw-777@127.0.0.1:1/nodb",
        }
        result = invoke(["fetch", sessions[0]["id"]], env)
        assert api.total_requests == 0
    assert result.exit_code == 3
    assert len(result.stderr.strip().splitlines()) == 1
    assert "pg-secret-pw-777" not in result.output
    assert "someone:***@127.0.0.1:1/nodb" in result.stderr


def test_python_dash_m_and_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "etl", "--version"], capture_output=True, text=True, timeout=60
    )
    expected = f"roomsync, version {__version__} (schema revision {head_revision()})"
    assert done.returncode == 0 and done.stdout.strip() == expected


def test_version_names_no_revision_it_cannot_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast reader agrees with Alembic above; unreadable migrations say so, no traceback."""
    from etl import version

    monkeypatch.setattr(version, "_versions_dir", lambda: Path("/nonexistent/versions"))
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"roomsync, version {__version__} (schema revision unknown)\n"


@pytest.mark.parametrize(
    "bad",
    [
        [],
        ["--concurrency", "many"],
        ["--concurrency", "0"],
        ["--retries", "0"],
        ["--timeout", "0"],
        ["--rate-limit", "0"],
        ["--batch-size", "1001"],
        ["--backoff", "-1"],
    ],
)
def test_bad_options_are_usage_errors_before_any_request(
    cli_env: dict[str, str], api: FakeSignalWire, bad: list[str], invoke: Invoke
) -> None:
    args = ["fetch", *bad, UNKNOWN] if bad else ["fetch"]
    result = invoke(args, cli_env)
    assert result.exit_code == 2
    assert api.total_requests == 0


def test_every_command_has_help_and_is_in_the_readme(invoke: Invoke) -> None:
    root = Path(__file__).resolve().parent.parent
    # README.md and the guides beside it in docs/ (where README.md points for the details)
    readme = "\n".join(p.read_text() for p in [root / "README.md", *root.glob("docs/**/*.md")])
    commands = [
        ["fetch"],
        ["backfill"],
        ["sync"],
        ["report"],
        ["status"],
        ["check"],
        ["demo"],
        ["db", "upgrade"],
        ["db", "downgrade"],
        ["db", "current"],
        ["deploy"],
    ]
    for args in commands:
        result = invoke([*args, "--help"], {})
        assert result.exit_code == 0 and "Usage:" in result.stdout
        assert f"roomsync {' '.join(args)}" in readme, args
        example = result.stdout.split("Example:\n", 1)[1].splitlines()[0].strip()
        assert example.startswith(f"roomsync {' '.join(args)}"), (args, example)
        assert "Exit codes:\n    0 " in result.stdout, args
        assert "--log-format [text|json]" in result.stdout, args
    assert {*main.commands} == {args[0] for args in commands}


def test_a_password_given_as_a_url_parameter_is_masked_too(invoke: Invoke) -> None:
    url = "postgresql://someone@127.0.0.1:1/nodb?password=qp-secret-555&sslmode=disable"
    result = invoke(["db", "current"], {"DATABASE_URL": url})
    assert result.exit_code == 3
    assert "qp-secret-555" not in result.output
    assert "password=***" in result.stderr and "sslmode=disable" in result.stderr


def test_undecodable_stdin_is_exit_2(cli_env: dict[str, str], api: FakeSignalWire) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "etl", "backfill", "-"],
        input=b"\xff\xfe\n",
        env={**cli_env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2 and b"cannot read -" in done.stderr
    assert b"Traceback" not in done.stderr and api.total_requests == 0
