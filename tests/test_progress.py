"""Progress: a bar on a terminal that log lines never write over; elsewhere a log line every N
seconds with done, total, rate and failures (fields in JSON logs). Time is injected."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from conftest import make_settings
from sqlalchemy.engine import Engine

from etl import logs
from etl.cli import main
from etl.fake_api import FakeSignalWire
from etl.pipeline import run_ids
from etl.progress import ProgressLog, TerminalProgress
from etl.storage import Store


class FakeClock:
    def __init__(self, step: float = 0.0) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    logs.set_status_line(None)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler).__name__ == "_Handler":
            root.removeHandler(handler)


def test_progress_log_every_interval_with_fields(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    progress = ProgressLog(60, clock=clock)
    caplog.set_level(logging.INFO, logger="etl.progress")
    progress.start(1000)
    clock.now += 30
    progress.advance(100)
    assert caplog.records == []
    clock.now += 31
    progress.advance(20, failures=3)
    (record,) = caplog.records
    assert (record.done, record.total, record.failures) == (120, 1000, 3)  # type: ignore[attr-defined]
    assert record.rate == round(120 / 61, 2)  # type: ignore[attr-defined]
    assert "120/1000 ids done" in record.getMessage()
    clock.now += 59
    progress.advance(1)
    assert len(caplog.records) == 1
    off = ProgressLog(0, clock=clock)
    off.start(None)
    clock.now += 1000
    off.advance(5)
    assert len(caplog.records) == 1


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_a_run_logs_progress_on_an_injected_clock(
    api: FakeSignalWire,
    sessions: list[dict],
    migrated_url: str,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="etl.progress")
    api.script(sessions[3]["id"], "422")
    ids = [s["id"] for s in sessions[:10]]
    run_ids(
        ids,
        make_settings(api, migrated_url),
        Store(engine),
        progress=ProgressLog(60, FakeClock(25)),
    )
    lines = [r for r in caplog.records if r.name == "etl.progress"]
    assert lines, "25 s a tick and a 60 s interval: some lines"
    last = lines[-1]
    assert last.total == 10 and 0 < last.done <= 10  # type: ignore[attr-defined]
    assert all(r.failures in (0, 1) for r in lines)  # type: ignore[attr-defined]


def test_terminal_bar_and_log_lines_do_not_overwrite(
    monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    logs.configure("text")
    clock = FakeClock()
    bar = TerminalProgress(terminal, clock=clock, interval=0)
    bar.start(3)
    clock.now += 2
    bar.advance(2, failures=1)
    logging.getLogger("etl.test").warning("a retry line")
    bar.advance(1, failures=1)
    bar.close()
    out = terminal.getvalue()
    before, log_line, after = out.partition(" WARNING roomsync: a retry line\n")
    assert log_line
    # the bar was cleared right before the log line, and drawn again right after it
    assert before.rsplit("\r\x1b[2K", 1)[1].endswith("Z")  # only the timestamp follows a clear
    assert after.startswith("\r\x1b[2K") and "2/3" in after.split("\r\x1b[2K")[1]
    assert "1 failed" in after and "ids/s" in after
    assert out.rstrip("\n").rsplit("\r\x1b[2K", 1)[1].startswith("fetching [")
    assert "3/3 100%" in out and out.endswith("\n")


@pytest.mark.parametrize("backend", ["sqlite"])  # not about storage
def test_cli_progress_lines_as_json_fields(cli_env: dict[str, str], sessions: list[dict]) -> None:
    stdin = "\n".join(s["id"] for s in sessions[:6])
    args = ["backfill", "-", "--log-format", "json", "--progress-every", "0.000001"]
    result = CliRunner().invoke(main, args, env=cli_env, input=stdin, catch_exceptions=False)
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    progress = [line for line in lines if line["message"].startswith("progress")]
    assert progress and all(line["total"] == 6 for line in progress)
    assert all({"done", "rate", "failures"} <= set(line) for line in progress)
    off = CliRunner().invoke(
        main, [*args[:-1], "0"], env=cli_env, input=stdin, catch_exceptions=False
    )
    assert not any("progress" in line for line in off.stderr.splitlines())


def test_progress_log_says_elapsed_time_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    progress = ProgressLog(60, clock=clock)
    caplog.set_level(logging.INFO, logger="etl.progress")
    progress.start(1000)
    clock.now += 100
    progress.advance(250)  # 2.5 ids/s: 750 left take 300 s
    (record,) = caplog.records
    assert (record.elapsed_s, record.eta_s) == (100.0, 300.0)  # type: ignore[attr-defined]
    assert record.getMessage().endswith("1m40s elapsed, ETA 5m00s")
    clock.now += 2 * 3600  # 250 in 7300 s: 750 left take 21900 s
    progress.advance(0)
    assert caplog.records[-1].getMessage().endswith("2h01m elapsed, ETA 6h05m")


def test_eta_is_unknown_without_a_rate_or_a_total(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger="etl.progress")
    streamed = ProgressLog(10, clock=clock)
    streamed.start(None)  # ids from a pipe: no total
    clock.now += 20
    streamed.advance(40)
    stalled = ProgressLog(10, clock=clock)
    stalled.start(100)
    clock.now += 20
    stalled.advance(0)  # nothing done yet: no rate
    assert [r.eta_s for r in caplog.records] == [None, None]  # type: ignore[attr-defined]
    assert all(r.getMessage().endswith("20s elapsed, ETA ?") for r in caplog.records)


def test_terminal_line_shows_elapsed_and_eta() -> None:
    clock = FakeClock()
    bar = TerminalProgress(Terminal(), clock=clock)
    bar.start(100)
    clock.now += 30
    bar.advance(60)  # 2 ids/s: 40 left take 20 s
    assert bar.line().endswith("60/100 60% 2.0 ids/s 0 failed 30s ETA 20s")
    bar.close()
