"""The application layer (etl.app): one function per command, typed options, one result
protocol, one JSON shape for every run; it opens the store, runs, writes the metrics file, and
never prints."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings, table_rows
from sqlalchemy.engine import Engine

from etl import app
from etl.config import Settings, mask_url
from etl.errors import DatabaseError, InputError
from etl.fake_api import FakeSignalWire
from etl.outcomes import COUNTED
from etl.storage.lock import run_lock
from etl.storage.migrate import head_revision
from etl.storage.schema import room_sessions, sync_runs

RUN_KEYS = {
    "command",
    "run_id",
    "run_skipped",
    "exit_code",
    "dry_run",
    "requested",
    *map(str, COUNTED),
    "elapsed_s",
    "failed_ids",
    "retries",
    "throttled",
    "interrupted",
    "errors",
    "bill",  # the rest of the bill's counts; null when the run asked for none
}
SYNC_KEYS = {"listed", "refreshed", "in_progress_listed", "probe", "full_pass", "reason"}


def test_every_run_has_one_shape_and_follows_the_protocol(
    api: FakeSignalWire, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = list(api.sessions)
    options = app.RunOptions(settings)
    results = [
        app.fetch(ids[:2], options),
        app.backfill(ids[2:5], app.BackfillOptions(), options),
        app.sync(app.SyncOptions(), options),
    ]
    for result in results:
        assert isinstance(result, app.Result)
        facts = result.to_dict()
        extra = SYNC_KEYS if result.command == "sync" else set()
        assert set(facts) == RUN_KEYS | extra, result.command
        assert facts["run_skipped"] is False and result.skipped is False
        assert isinstance(facts["run_id"], int) and facts["run_id"] == result.run_id
        assert all(type(facts[str(o)]) is int for o in COUNTED)  # counts are counts
        assert facts["exit_code"] == result.exit_code == 0
    assert [r.to_dict()["inserted"] for r in results] == [2, 3, len(ids) - 5]
    assert len({r.run_id for r in results}) == 3
    assert capsys.readouterr().out == ""  # nothing below the CLI prints (logs: stderr)


def test_a_skipped_sync_is_a_flag_and_zero_counts(
    api: FakeSignalWire, settings: Settings, engine: Engine
) -> None:
    with run_lock(engine) as taken:
        assert taken
        result = app.sync(app.SyncOptions(), app.RunOptions(settings))
    assert (result.skipped, result.exit_code, result.run_id) == (True, 0, None)
    facts = result.to_dict()
    assert set(facts) == RUN_KEYS | SYNC_KEYS
    assert facts["run_skipped"] is True and facts["skipped"] == 0
    assert facts["reason"] == "another sync is running"
    assert "skipped" in result.to_text() and api.total_requests == 0
    assert table_rows(engine, sync_runs) == []


def test_the_text_summary_says_what_the_json_says(api: FakeSignalWire, settings: Settings) -> None:
    ids = list(api.sessions)[:4]
    api.script(ids[0], "500")
    result = app.fetch(ids, app.RunOptions(dataclasses.replace(settings, retries=1)))
    text = result.to_text()
    assert result.exit_code == 1
    assert f"run {result.run_id}, failed" in text
    assert "4 requested: 3 inserted" in text and "1 failed" in text
    assert ids[0] in text  # the failed id, and how to retry it
    assert "--retry-failed" in text


def test_options_are_frozen(settings: Settings) -> None:
    options = app.RunOptions(settings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.dry_run = True  # type: ignore[misc]
    assert app.SyncOptions().overlap == timedelta(hours=1)


def test_a_dry_run_writes_no_rows_and_no_metrics_file(
    api: FakeSignalWire, settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "roomsync.prom"
    options = app.RunOptions(settings, dry_run=True, metrics_file=str(path))
    result = app.backfill(list(api.sessions)[:3], app.BackfillOptions(), options)
    assert result.to_dict()["dry_run"] is True and result.to_dict()["inserted"] == 3
    assert result.run_id is None
    assert table_rows(engine, room_sessions) == [] and not path.exists()


def test_the_metrics_file_is_written_after_a_run(
    api: FakeSignalWire, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "roomsync.prom"
    result = app.fetch(list(api.sessions)[:2], app.RunOptions(settings, metrics_file=str(path)))
    text = path.read_text()
    assert f'roomsync_last_run_id{{command="fetch"}} {float(result.run_id or 0)}' in text
    assert 'roomsync_last_run_requests{command="fetch",status="200"} 2.0' in text


def test_an_unwritable_metrics_file_is_refused_before_the_run(
    api: FakeSignalWire, settings: Settings, tmp_path: Path
) -> None:
    options = app.RunOptions(settings, metrics_file=str(tmp_path / "missing" / "x.prom"))
    with pytest.raises(InputError, match="no directory"):
        app.fetch(list(api.sessions)[:1], options)
    assert api.total_requests == 0


class Closing:
    """A progress display that records what it was told."""

    def __init__(self) -> None:
        self.started: list[int | None] = []
        self.done = 0
        self.closed = 0

    def start(self, total: int | None) -> None:
        self.started.append(total)

    def advance(self, done: int, failures: int = 0) -> None:
        self.done += done

    def close(self) -> None:
        self.closed += 1


def test_the_progress_display_is_told_and_closed(
    api: FakeSignalWire, settings: Settings, migrated_url: str
) -> None:
    progress = Closing()
    app.backfill(
        list(api.sessions)[:5], app.BackfillOptions(), app.RunOptions(settings, progress=progress)
    )
    assert (progress.started, progress.done, progress.closed) == ([5], 5, 1)
    broken = make_settings(api, migrated_url, api_token="wrong")
    failing = Closing()
    with pytest.raises(Exception, match="SIGNALWIRE_API_TOKEN"):
        app.fetch(list(api.sessions)[:1], app.RunOptions(broken, progress=failing))
    assert failing.closed == 1  # closed even when the run ends in an error


def test_read_commands_share_the_protocol(
    api: FakeSignalWire, settings: Settings, migrated_url: str
) -> None:
    app.fetch(list(api.sessions)[:3], app.RunOptions(settings))
    status = app.status(migrated_url)
    stale = app.status(migrated_url, max_age=timedelta(seconds=1e-6))
    current = app.db_current(migrated_url)
    report = app.report(migrated_url, app.ReportOptions(by="status"))
    results: list[Any] = [status, stale, current, report]
    assert all(isinstance(r, app.Result) and r.run_id is None for r in results)
    assert (status.exit_code, stale.exit_code) == (0, 1)  # no sync ever succeeded
    assert status.to_dict()["sessions"] == 3 and "3 stored" in status.to_text()
    assert stale.to_dict()["healthy"] is False
    assert (
        current.to_dict()["at_head"] is True and current.to_text() == f"{head_revision()} (head)\n"
    )
    assert sum(row["sessions"] for row in report.to_dict()["rows"]) == 3
    assert "total" in report.to_text()


def test_schema_moves_say_where_the_database_ended(db_url: str) -> None:
    up = app.db_upgrade(db_url)
    assert up.revision == head_revision() and up.to_text().endswith(f"{head_revision()} (head)\n")
    assert up.database == mask_url(db_url)  # a password is shown as ***
    down = app.db_downgrade(db_url, "base")
    assert down.revision is None and down.to_text().endswith("is at base\n")
    with pytest.raises(DatabaseError, match="roomsync db upgrade"):
        app.status(db_url)


def test_a_report_to_a_file_prints_nothing(migrated_url: str, tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    result = app.report(migrated_url, app.ReportOptions(fmt="csv", output=str(target)))
    assert result.to_text() == "" and target.read_text().startswith("group,")
    assert result.to_dict()["output"] == str(target)
