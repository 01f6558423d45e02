"""Issue 22, defect 3: a backfill that reads no id is an error (exit 2, one line), unless
--allow-empty -- real processes, real pipes and bash process substitution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_settings
from hostile_api import HostileAPI
from roomsync_proc import Finished, Roomsync, env_for_url, roomsync, runs

from etl import api
from etl.errors import InputError
from etl.fake_api import generate_sessions
from etl.storage.engines import make_engine
from etl.storage.migrate import upgrade


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    return url


def shell(script: str, env: dict[str, str]) -> Finished:
    """`script` run by bash (for `<(...)` and pipes), roomsync as "$PYTHON" -m etl."""
    return Roomsync([], env, shell=script).finish(timeout=30)


def assert_refused_as_empty(result: Finished, api: HostileAPI, url: str) -> str:
    """Exit 2, one error line, no request, no run in the ledger; returns the line."""
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.one_line_error()
    assert "--allow-empty" in line
    assert api.requests == []
    engine = make_engine(url)
    try:
        assert runs(engine) == []
    finally:
        engine.dispose()
    return line


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "script",
    [
        'exec "$PYTHON" -m etl backfill <(exit 1) --json',
        'false | "$PYTHON" -m etl backfill - --json',
    ],
    ids=["process-substitution", "pipe"],
)
def test_a_producer_that_wrote_nothing_is_exit_2_naming_the_pipe(
    hostile_api: HostileAPI, sqlite_url: str, script: str
) -> None:
    result = shell(script, env_for_url(hostile_api.base_url, sqlite_url))
    line = assert_refused_as_empty(result, hostile_api, sqlite_url)
    assert "input was empty" in line and "may have failed" in line
    assert json.loads(result.stdout)["exit_code"] == 2  # --json: the error as JSON too


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("", "nothing was read"),
        ("# ids of yesterday\n\n   \n# none\n", "only blank lines and # comments"),
    ],
    ids=["empty-file", "comments-only"],
)
def test_an_id_file_without_ids_is_exit_2(
    hostile_api: HostileAPI, sqlite_url: str, tmp_path: Path, content: str, says: str
) -> None:
    path = tmp_path / "ids.txt"
    path.write_text(content)
    result = roomsync(["backfill", str(path)], env_for_url(hostile_api.base_url, sqlite_url))
    line = assert_refused_as_empty(result, hostile_api, sqlite_url)
    assert "input was empty" in line and says in line and str(path) in line
    assert "may have failed" not in line  # a regular file: no producer to blame


@pytest.mark.timeout(60)
def test_only_invalid_lines_left_out_is_no_id_either(
    hostile_api: HostileAPI, sqlite_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("not-an-id\nERROR: relation does not exist\n")
    env = env_for_url(hostile_api.base_url, sqlite_url)
    result = roomsync(["backfill", str(path), "--skip-invalid"], env)
    line = assert_refused_as_empty(result, hostile_api, sqlite_url)
    assert "all 2 id line(s)" in line and "invalid" in line


@pytest.mark.timeout(60)
def test_allow_empty_makes_an_empty_input_a_run_of_nothing(
    hostile_api: HostileAPI, sqlite_url: str
) -> None:
    env = env_for_url(hostile_api.base_url, sqlite_url)
    result = shell('exec "$PYTHON" -m etl backfill <(exit 1) --allow-empty --json', env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.summary()["requested"] == 0
    assert hostile_api.requests == []


@pytest.mark.timeout(60)
def test_a_non_empty_pipe_still_works(hostile_api: HostileAPI, sqlite_url: str) -> None:
    sessions = generate_sessions(3, seed=220)
    hostile_api.set_sessions(sessions)
    ids = " ".join(s["id"] for s in sessions)
    env = env_for_url(hostile_api.base_url, sqlite_url)
    result = shell(f'printf "%s\\n" {ids} | "$PYTHON" -m etl backfill - --json --with none', env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.summary()["inserted"] == 3


def test_the_python_api_refuses_no_ids_unless_allowed(
    hostile_api: HostileAPI, sqlite_url: str, tmp_path: Path
) -> None:
    settings = make_settings(hostile_api, sqlite_url)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="input was empty.*allow_empty=True") as info:
        api.backfill([], settings)
    assert info.value.exit_code == 2
    with pytest.raises(InputError, match="all 1 id line"):
        api.backfill(["nope"], settings, skip_invalid=True)
    empty = tmp_path / "ids.txt"
    empty.write_text("# nothing today\n")
    with pytest.raises(InputError, match="only blank lines"):
        api.backfill_file(empty, settings)
    assert api.backfill([], settings, allow_empty=True)["requested"] == 0
    assert api.backfill_file(empty, settings, allow_empty=True)["exit_code"] == 0
    assert hostile_api.requests == []
