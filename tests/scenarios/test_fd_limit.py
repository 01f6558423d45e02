"""Issue 22, defect 7b: an open-file limit below what --concurrency needs. The run goes on at
the concurrency the limit allows, with one warning line, instead of thousands of lines of
EMFILE tracebacks; a limit with no room for one request is one error line, exit 2. Real
processes under a lowered RLIMIT_NOFILE (bash's `ulimit -n`, soft and hard), both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_api import HostileAPI
from roomsync_proc import Roomsync, env_for_url, runs, stored
from sqlalchemy.engine import Engine

from etl.fake_api import generate_sessions


def backfill_under_limit(limit: int, path: Path, env: dict[str, str], *args: str) -> Roomsync:
    # --with none: the hostile stand-in serves sessions only (no members or recordings)
    script = f'ulimit -n {limit} && exec "$PYTHON" -m etl backfill {path} --json --with none '
    script += " ".join(args)
    return Roomsync([], env, shell=script)


@pytest.mark.timeout(120)
def test_a_limit_below_the_concurrency_lowers_it_with_one_warning(
    hostile_api: HostileAPI, migrated_url: str, engine: Engine, tmp_path: Path
) -> None:
    sessions = generate_sessions(300, seed=223)
    hostile_api.set_sessions(sessions)
    path = tmp_path / "ids.txt"
    path.write_text("".join(f"{s['id']}\n" for s in sessions))
    env = env_for_url(hostile_api.base_url, migrated_url)
    result = backfill_under_limit(64, path, env, "--concurrency", "200").finish(timeout=90)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Too many open files" not in result.stderr
    # A loaded machine may make the stand-in refuse a connection now and then: those retries
    # are logged as such and are not what this test is about; nothing else may be.
    lines = [line for line in result.stderr.splitlines() if "retrying session" not in line]
    warnings = [line for line in lines if "WARNING" in line]
    assert len(warnings) == 1 and "open-file limit (ulimit -n) is 64" in warnings[0]
    assert "instead of --concurrency 200" in warnings[0]
    assert len(lines) <= 5
    assert result.summary()["inserted"] == 300
    assert set(stored(engine)) == {s["id"] for s in sessions}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["sqlite"])  # refused before the database is written
def test_a_limit_with_no_room_for_one_request_is_one_line_exit_2(
    hostile_api: HostileAPI, migrated_url: str, engine: Engine, tmp_path: Path
) -> None:
    sessions = generate_sessions(50, seed=224)
    hostile_api.set_sessions(sessions)
    path = tmp_path / "ids.txt"
    path.write_text("".join(f"{s['id']}\n" for s in sessions))
    env = env_for_url(hostile_api.base_url, migrated_url)
    result = backfill_under_limit(16, path, env, "--concurrency", "8").finish(timeout=45)
    assert result.returncode == 2, result.stderr[-3000:]
    line = result.one_line_error()
    assert "open-file limit (ulimit -n) is 16" in line
    assert hostile_api.requests == []
    assert runs(engine) == [] and stored(engine) == {}
