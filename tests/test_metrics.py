"""`--metrics-file`: a Prometheus text file (parsed with prometheus-client's own parser) that
describes every command's last run, from the ledger, after each run; both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Invoke
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from etl.fake_api import FakeSignalWire
from etl.outcomes import COUNTED, RunOutcome
from etl.storage.schema import sync_runs

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def read_metrics(path: Path) -> Samples:
    families = text_string_to_metric_families(path.read_text())
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((f"roomsync_{name}", frozenset(labels.items())))


def last_run(engine: Engine, command: str) -> Any:
    with engine.connect() as conn:
        query = sa.select(sync_runs).where(sync_runs.c.command == command)
        return conn.execute(query.order_by(sync_runs.c.id.desc())).first()


def test_every_command_described_from_the_ledger(
    cli_env: dict[str, str],
    api: FakeSignalWire,
    sessions: list[dict],
    engine: Engine,
    tmp_path: Path,
    invoke: Invoke,
) -> None:
    (tmp_path / "textfile").mkdir()
    path = tmp_path / "textfile" / "roomsync.prom"
    ids = [s["id"] for s in sessions[:5]]
    api.script(ids[0], "429:0.01", "503")
    args = ["--metrics-file", str(path), "--backoff", "0.01", "--with", "none"]
    assert invoke(["backfill", "-", *args], cli_env, "\n".join(ids)).exit_code == 0
    assert invoke(["sync", *args], cli_env).exit_code == 0
    samples = read_metrics(path)
    assert all(name.startswith("roomsync_") for name, _ in samples)
    backfill, sync = last_run(engine, "backfill"), last_run(engine, "sync")
    for command, run in (("backfill", backfill), ("sync", sync)):
        assert value(samples, "last_run_id", command=command) == run.id
        start = value(samples, "last_run_start_timestamp_seconds", command=command)
        end = value(samples, "last_run_end_timestamp_seconds", command=command)
        assert start == run.started_at.timestamp() and end == run.finished_at.timestamp()
        assert value(samples, "last_success_timestamp_seconds", command=command) == end
        for word in RunOutcome:
            expected = 1.0 if word == run.outcome else 0.0
            assert value(samples, "last_run_outcome", command=command, outcome=word) == expected
        for word in COUNTED:
            got = value(samples, "last_run_ids", command=command, outcome=word)
            assert got == getattr(run, word)
    # requests and retries: backfill's carried over from the file its own run wrote
    assert value(samples, "last_run_requests", command="backfill", status="200") == 5
    assert value(samples, "last_run_requests", command="backfill", status="429") == 1
    assert value(samples, "last_run_requests", command="backfill", status="503") == 1
    assert value(samples, "last_run_retries", command="backfill") == 2
    assert value(samples, "last_run_retries", command="sync") == 0
    assert value(samples, "sessions") == len(sessions)
    assert value(samples, "failing_ids") == 0
    assert [p.name for p in path.parent.iterdir()] == ["roomsync.prom"]  # no temporary left


def test_a_run_without_the_file_drops_stale_traffic_and_errors_are_written(
    cli_env: dict[str, str], sessions: list[dict], engine: Engine, tmp_path: Path, invoke: Invoke
) -> None:
    path = tmp_path / "roomsync.prom"
    metrics = ["--metrics-file", str(path)]
    assert invoke(["fetch", sessions[0]["id"], *metrics], cli_env).exit_code == 0
    assert invoke(["fetch", sessions[1]["id"]], cli_env).exit_code == 0  # no file this time
    refused = invoke(["sync", *metrics], cli_env | {"SIGNALWIRE_API_TOKEN": "wrong"})
    assert refused.exit_code == 3
    samples = read_metrics(path)
    fetch = last_run(engine, "fetch")
    assert value(samples, "last_run_id", command="fetch") == fetch.id
    assert value(samples, "last_run_ids", command="fetch", outcome="inserted") == 1
    assert value(samples, "last_run_requests", command="fetch", status="200") is None  # stale
    assert value(samples, "last_run_outcome", command="sync", outcome="error") == 1
    assert (value(samples, "last_run_requests", command="sync", status="401") or 0) >= 1
    assert value(samples, "last_success_timestamp_seconds", command="sync") is None


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_unwritable_place_is_refused_before_any_request(
    cli_env: dict[str, str],
    api: FakeSignalWire,
    sessions: list[dict],
    tmp_path: Path,
    invoke: Invoke,
) -> None:
    bad = tmp_path / "no-such-dir" / "roomsync.prom"
    result = invoke(["fetch", sessions[0]["id"], "--metrics-file", str(bad)], cli_env)
    assert result.exit_code == 2 and "no directory" in result.stderr
    assert api.total_requests == 0


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_a_skipped_sync_rewrites_the_file_from_the_ledger_alone(
    cli_env: dict[str, str], engine: Engine, tmp_path: Path, invoke: Invoke
) -> None:
    from etl.storage.lock import run_lock

    path = tmp_path / "roomsync.prom"
    assert invoke(["sync", "--metrics-file", str(path)], cli_env).exit_code == 0
    first = read_metrics(path)
    with run_lock(engine) as taken:
        assert taken
        skipped = invoke(["sync", "--json", "--metrics-file", str(path)], cli_env)
    assert skipped.exit_code == 0 and '"run_skipped": true' in skipped.stdout
    assert read_metrics(path) == first  # the same last run, its requests kept
    assert (value(first, "last_run_requests", command="sync", status="200") or 0) > 0
