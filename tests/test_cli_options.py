"""The CLI's shared surface (etl/cli_options.py): results on stdout and logs on stderr, one JSON
shape, --env-file, every missing setting named at once, true -v help texts; and the Python
API's errors in its own words."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT, TOKEN, Invoke, env_for, table_rows

from etl import api as roomsync
from etl.errors import InputError
from etl.fake_api import FakeSignalWire
from etl.storage.migrate import head_revision
from etl.storage.schema import room_sessions

SQLITE = pytest.mark.parametrize("backend", ["sqlite"])  # not about storage

UNSET = {"SIGNALWIRE_SPACE": "", "SIGNALWIRE_PROJECT_ID": "", "SIGNALWIRE_API_TOKEN": ""}


def write_env_file(path: Path, api: FakeSignalWire, url: str, token: str = TOKEN) -> str:
    path.write_text(
        "# roomsync settings\n"
        f"export SIGNALWIRE_SPACE={api.base_url}\n"
        f"SIGNALWIRE_PROJECT_ID='{PROJECT}'\n"
        f'SIGNALWIRE_API_TOKEN="{token}"\n'
        "\n"
        f"DATABASE_URL={url}\n"
        "ROOMSYNC=/opt/roomsync/.venv/bin/roomsync\n"  # the cron wrapper's own: ignored
    )
    return str(path)


@SQLITE
def test_results_on_stdout_logs_on_stderr_and_quiet_keeps_the_result(
    cli_env: dict[str, str], sessions: list[dict], invoke: Invoke
) -> None:
    ids = [s["id"] for s in sessions[:2]]
    loud = invoke(["fetch", *ids], cli_env)
    assert loud.exit_code == 0
    assert "2 requested: 2 inserted" in loud.stdout and "INFO" not in loud.stdout
    assert "INFO roomsync" in loud.stderr
    quiet = invoke(["fetch", *ids, "-q"], cli_env)
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert "2 requested: 0 inserted, 0 updated, 2 unchanged" in quiet.stdout


@SQLITE
def test_fetch_backfill_and_sync_print_one_json_shape(
    cli_env: dict[str, str], sessions: list[dict], invoke: Invoke, tmp_path: Path
) -> None:
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(sessions[1]["id"] + "\n")
    shapes = {}
    for args in (["fetch", sessions[0]["id"]], ["backfill", str(ids_file)], ["sync"]):
        result = invoke([*args, "--json"], cli_env)
        assert result.exit_code == 0, result.output
        facts = json.loads(result.stdout)
        assert facts["command"] == args[0] and facts["run_skipped"] is False
        assert isinstance(facts["skipped"], int) and not isinstance(facts["skipped"], bool)
        shapes[args[0]] = {key: type(value).__name__ for key, value in facts.items()}
    assert shapes["fetch"] == shapes["backfill"]
    assert {k: v for k, v in shapes["sync"].items() if k in shapes["fetch"]} == shapes["fetch"]


def test_schema_commands_print_where_the_database_is(db_url: str, invoke: Invoke) -> None:
    up = invoke(["db", "upgrade"], {"DATABASE_URL": db_url})
    assert up.exit_code == 0 and up.stdout.endswith(f"is at {head_revision()} (head)\n")
    current = invoke(["db", "current", "--json"], {"DATABASE_URL": db_url})
    assert json.loads(current.stdout)["at_head"] is True


@SQLITE
def test_every_missing_setting_is_named_at_once(
    cli_env: dict[str, str], sessions: list[dict], invoke: Invoke
) -> None:
    for command in (["fetch", sessions[0]["id"]], ["sync"]):
        result = invoke(command, cli_env | UNSET)
        assert result.exit_code == 3
        assert result.stderr == (
            "roomsync: error: not set: SIGNALWIRE_SPACE, SIGNALWIRE_PROJECT_ID, "
            "SIGNALWIRE_API_TOKEN\n"
        )
    two = invoke(["sync"], cli_env | {"SIGNALWIRE_SPACE": "", "SIGNALWIRE_API_TOKEN": ""})
    assert "not set: SIGNALWIRE_SPACE, SIGNALWIRE_API_TOKEN\n" in two.stderr


@SQLITE
def test_settings_from_an_env_file(
    api: FakeSignalWire, migrated_url: str, invoke: Invoke, tmp_path: Path
) -> None:
    path = write_env_file(tmp_path / "roomsync.env", api, migrated_url)
    result = invoke(["sync", "--env-file", path, "--json", "-v"], UNSET | {"DATABASE_URL": ""})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["inserted"] == len(api.sessions)
    assert len(table_rows(migrated_url, room_sessions)) == len(api.sessions)
    assert TOKEN not in result.output
    status = invoke(["status", "--env-file", path, "--json"], {"DATABASE_URL": ""})
    assert json.loads(status.stdout)["sessions"] == len(api.sessions)


@SQLITE
def test_the_environment_wins_over_the_env_file(
    api: FakeSignalWire, migrated_url: str, invoke: Invoke, tmp_path: Path
) -> None:
    path = write_env_file(tmp_path / "roomsync.env", api, migrated_url, token="file-token-bad")
    env = UNSET | {"SIGNALWIRE_API_TOKEN": TOKEN, "DATABASE_URL": ""}
    result = invoke(["sync", "--env-file", path], env)
    assert result.exit_code == 0, result.output
    assert "not read from --env-file: ['SIGNALWIRE_API_TOKEN']" in result.stderr
    assert "file-token-bad" not in result.output and TOKEN not in result.output


@SQLITE
@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (None, 2, "cannot read env file"),
        ("SIGNALWIRE_API_TOKEN=secret value-999\n", 3, "line 1: not KEY=value"),
        ("# ok\nsecret-value-999\n", 3, "line 2: not KEY=value"),
        ("KEY='secret-value-999\n", 3, "line 1: not KEY=value"),
        (b"TOKEN=\xff\xfe\n", 2, "not UTF-8"),
    ],
)
def test_a_bad_env_file_is_one_line_without_its_values(
    cli_env: dict[str, str],
    invoke: Invoke,
    tmp_path: Path,
    content: str | bytes | None,
    code: int,
    message: str,
) -> None:
    path = tmp_path / "roomsync.env"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    for command in (["sync"], ["status"], ["db", "current"]):
        result = invoke([*command, "--env-file", str(path)], cli_env)
        assert result.exit_code == code, (command, result.output)
        assert result.stderr.startswith("roomsync: error: ") and message in result.stderr
        assert len(result.stderr.splitlines()) == 1 and "secret" not in result.output


def test_verbose_help_is_true_per_command(invoke: Invoke) -> None:
    for command in (["fetch"], ["backfill"], ["sync"], ["check"], ["demo"]):
        assert "HTTP request" in invoke([*command, "--help"]).stdout.split("-q, --quiet")[0]
    for command in (["status"], ["report"], ["db", "upgrade"], ["db", "current"]):
        text = invoke([*command, "--help"]).stdout
        assert "Also log each HTTP request" not in text
        assert "makes no HTTP request" in " ".join(text.split()), command


@SQLITE
def test_python_api_errors_name_api_parameters(migrated_url: str, api: FakeSignalWire) -> None:
    from conftest import make_settings

    settings = make_settings(api, migrated_url)
    with pytest.raises(InputError) as invalid:
        roomsync.backfill(["not-a-uuid"], settings)
    assert "skip_invalid=True" in str(invalid.value) and "--" not in str(invalid.value)
    with pytest.raises(InputError) as shard:
        roomsync.backfill(list(api.sessions)[:1], settings, shard="2/2")
    assert str(shard.value).startswith("shard: ") and "--shard" not in str(shard.value)
    assert api.total_requests == 0


def test_the_demo_prints_next_steps_that_work_where_the_user_stands(tmp_path: Path) -> None:
    """The README's flow: the venv is not activated, `roomsync` is not on PATH; the closing
    line names the script by a path that works from the current directory, and it does."""
    script = Path(sys.executable).parent / "roomsync"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [str(script), "demo", "--sessions", "5"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    step = next(line for line in done.stdout.splitlines() if line.startswith("see the numbers"))
    command = step.split(": ", 1)[1]
    assert command.startswith(str(script) if not script.is_relative_to(tmp_path) else ".")
    report = subprocess.run(
        shlex.split(command), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert report.returncode == 0, report.stderr[-2000:]
    assert report.stdout.splitlines()[-1].startswith("total")


@pytest.mark.parametrize(
    ("argv0", "on_path", "expected"),
    [
        ("{here}/.venv/bin/roomsync", None, ".venv/bin/roomsync"),
        ("{here}/.venv/bin/roomsync", "{here}/.venv/bin/roomsync", "roomsync"),
        ("{here}/.venv/bin/roomsync", "/usr/local/bin/roomsync", ".venv/bin/roomsync"),
        ("/opt/tool/bin/roomsync", None, "/opt/tool/bin/roomsync"),
        ("{here}/roomsync", None, "./roomsync"),
        ("/x/etl/__main__.py", "/usr/bin/roomsync", "{python} -m etl"),
    ],
)
def test_how_to_run(tmp_path: Path, argv0: str, on_path: str | None, expected: str) -> None:
    from etl.demo import how_to_run

    python = str(tmp_path / ".venv/bin/python")
    (tmp_path / ".venv/bin").mkdir(parents=True)
    (tmp_path / ".venv/bin/roomsync").touch()
    values = {"here": str(tmp_path), "python": ".venv/bin/python"}
    chosen = how_to_run(
        argv0.format(**values),
        None if on_path is None else on_path.format(**values),
        python,
        cwd=str(tmp_path),
    )
    assert chosen == expected.format(**values)


def test_env_file_cron_example_parses() -> None:
    from etl.config import read_env_file

    example = Path(__file__).resolve().parent.parent / "cron" / "roomsync.env.example"
    values = read_env_file(str(example))
    assert {"SIGNALWIRE_SPACE", "SIGNALWIRE_API_TOKEN", "DATABASE_URL"} <= set(values)


@SQLITE
def test_env_for_is_what_the_cli_reads(api: FakeSignalWire, migrated_url: str) -> None:
    """The test environment helper and an env file written from it say the same."""
    from etl.config import environment

    path = Path(os.devnull)
    merged, shadowed = environment(str(path), env_for(api, migrated_url))
    assert merged == env_for(api, migrated_url) and shadowed == []
