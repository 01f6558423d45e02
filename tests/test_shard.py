"""`backfill --shard K/N`: a stable partition of the ids, and N real workers on one database."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import env_for

from etl.cli import main
from etl.errors import InputError
from etl.fake_api import LIST_PATH, FakeSignalWire, by_id_view, generate_sessions
from etl.records import parse_session
from etl.shard import Shard, ShardIds, parse_shard
from etl.storage.engines import make_engine
from etl.storage.schema import room_sessions

ROOMSYNC = Path(sys.executable).parent / "roomsync"


@pytest.fixture
def sessions() -> list[dict[str, Any]]:
    """More sessions than the default fixture, so that every shard gets a fair share."""
    return generate_sessions(150, seed=12)


def random_ids(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def test_shards_are_disjoint_cover_every_id_and_are_balanced() -> None:
    ids = random_ids(4000, seed=3)
    for count in (1, 2, 4, 7):
        shards = [list(ShardIds(ids, Shard(k, count))) for k in range(count)]
        assert sorted(id_ for shard in shards for id_ in shard) == sorted(ids)
        expected = len(ids) / count
        for shard in shards:
            assert abs(len(shard) - expected) < 0.15 * expected, (count, len(shard))


def test_shard_of_an_id_does_not_depend_on_the_process_or_its_hash_seed() -> None:
    ids = random_ids(60, seed=5)
    code = (
        "import sys; from etl.shard import Shard; ids = sys.argv[1:]; "
        "print(' '.join(str(k) for i in ids for k in range(5) if Shard(k, 5).owns(i)))"
    )
    seen = set()
    for seed in ("1", "2", "random"):
        done = subprocess.run(
            [sys.executable, "-c", code, *ids],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        seen.add(done.stdout.strip())
    here = " ".join(str(k) for i in ids for k in range(5) if Shard(k, 5).owns(i))
    assert seen == {here}
    # Any spelling of the same UUID lands in the same shard.
    assert Shard(2, 5).owns(ids[0].upper()) == Shard(2, 5).owns(ids[0])


def test_len_counts_only_the_shard() -> None:
    ids = random_ids(300, seed=8)
    sharded = ShardIds(ids, Shard(1, 3))
    assert len(sharded) == len(list(sharded)) < len(ids)


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("0/1", {}, Shard(0, 1)),
        ("3/4", {}, Shard(3, 4)),
        (" 2 / 10 ", {}, Shard(2, 10)),
        ("index/4", {"JOB_COMPLETION_INDEX": "3"}, Shard(3, 4)),
    ],
)
def test_parse_shard(text: str, env: dict[str, str], expected: Shard) -> None:
    assert parse_shard(text, env) == expected


BAD_SHARDS = [
    ("4/4", {}, "out of range"),
    ("1/0", {}, "at least 1"),
    ("-1/4", {}, "whole number"),
    ("1", {}, "K/N"),
    ("a/4", {}, "whole number"),
    ("1/4/2", {}, "whole number"),
    ("1/" + "9" * 5000, {}, "whole number"),
    ("index/4", {}, "JOB_COMPLETION_INDEX, which is not set"),
    ("index/4", {"JOB_COMPLETION_INDEX": "4"}, "out of range"),
    ("index/4", {"JOB_COMPLETION_INDEX": "x"}, "JOB_COMPLETION_INDEX must be a whole number"),
]


@pytest.mark.parametrize(("text", "env", "message"), BAD_SHARDS)
def test_bad_shard_is_input_error(text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_shard(text, env)


@pytest.mark.parametrize(("text", "env", "message"), BAD_SHARDS[:2] + BAD_SHARDS[-3:])
def test_bad_shard_on_the_command_line_is_exit_2_in_one_line(
    text: str,
    env: dict[str, str],
    message: str,
    api: FakeSignalWire,
    migrated_url: str,
    tmp_path: Path,
) -> None:
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(next(iter(api.sessions)) + "\n")
    run_env: dict[str, str | None] = {"JOB_COMPLETION_INDEX": None}  # None: unset for the run
    run_env |= {**env_for(api, migrated_url), **env}
    result = CliRunner().invoke(main, ["backfill", str(ids_file), "--shard", text], env=run_env)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("roomsync: error: ") and message in lines[0]
    assert api.total_requests == 0


@pytest.mark.parametrize("backend", ["postgresql"])
def test_n_worker_processes_fetch_each_id_once_and_leave_the_table_exact(
    api: FakeSignalWire, migrated_url: str, tmp_path: Path
) -> None:
    """Three real `roomsync backfill --shard` processes started together on one PostgreSQL
    database: the stand-in counts exactly one request per id, and the table holds exactly the
    sessions the API has, as get-by-id returns them. The third worker takes its shard from
    JOB_COMPLETION_INDEX, as a pod of a Kubernetes Indexed Job does."""
    workers = 3
    known = list(api.sessions)
    unknown = random_ids(6, seed=21)
    lines = known + unknown + known[:20]  # duplicates too: still fetched once in all
    random.Random(4).shuffle(lines)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(lines) + "\n")
    api.latency = 0.005  # the workers' requests overlap in time
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env_for(api, migrated_url)}
    processes = []
    for k in range(workers):
        shard, env = f"{k}/{workers}", base_env
        if k == workers - 1:
            shard, env = f"index/{workers}", {**base_env, "JOB_COMPLETION_INDEX": str(k)}
        command = [
            str(ROOMSYNC),
            "backfill",
            str(ids_file),
            "--shard",
            shard,
            "--json",
            "--with",
            "none",
        ]
        processes.append(
            subprocess.Popen(
                [*command, "--concurrency", "4", "--batch-size", "20"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tmp_path,
            )
        )
    summaries = []
    for process in processes:
        out, err = process.communicate(timeout=90)
        assert process.returncode == 0, err
        summaries.append(json.loads(out))

    assert all(summary["requested"] > 0 for summary in summaries)
    assert sum(summary["requested"] for summary in summaries) == len(known) + len(unknown)
    assert sum(summary["inserted"] for summary in summaries) == len(known)
    assert sum(summary["not_found"] for summary in summaries) == len(unknown)
    by_id = {path: n for path, n in api.requests.items() if path != LIST_PATH}
    assert by_id == {f"{LIST_PATH}/{session_id}": 1 for session_id in known + unknown}

    engine = make_engine(migrated_url)
    try:
        with engine.connect() as conn:
            stored = {str(row.id): row for row in conn.execute(sa.select(room_sessions))}
    finally:
        engine.dispose()
    assert set(stored) == set(known)
    for session_id in known:
        expected = parse_session(by_id_view(api.sessions[session_id]), session_id)
        row = stored[session_id]
        assert (row.status, row.updated_at, row.duration) == (
            expected["status"],
            expected["updated_at"],
            expected["duration"],
        )


def test_retry_failed_retries_each_failed_id_in_its_own_shard_only(
    api: FakeSignalWire, migrated_url: str
) -> None:
    from conftest import make_settings

    from etl import api as roomsync

    ids = list(api.sessions)
    settings = make_settings(api, migrated_url, retries=1)
    failing = ids[:12]
    for session_id in failing:
        api.script(session_id, "500")
    first = roomsync.backfill(ids, settings)
    assert sorted(first["failed_ids"]) == sorted(failing)
    api.reset_stats()
    halves = [roomsync.backfill([], settings, retry_failed=True, shard=f"{k}/2") for k in range(2)]
    assert sorted(halves[0]["failed_ids"] + halves[1]["failed_ids"]) == []
    assert halves[0]["requested"] > 0 and halves[1]["requested"] > 0
    assert dict(api.requests) == {f"{LIST_PATH}/{session_id}": 1 for session_id in failing}
