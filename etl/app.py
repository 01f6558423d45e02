"""The application layer: one function per command, shared by the CLI and the Python API.

Each function opens the store, runs the command, writes the metrics file when asked, and
returns a result; none of them prints or exits. Options travel as frozen dataclasses
(`RunOptions` for what every run takes, `BackfillOptions`, `SyncOptions`, ...), built by the
front end from its flags or keyword arguments. Every result follows `Result`: a run id (None
where a command makes no run), the exit code the command ends with, whether the run was
skipped, `to_dict()` (what `--json` prints) and `to_text()` (the human summary on stdout).

Errors are raised as the exceptions of etl.errors; the CLI maps them to messages and exit
codes in one place (etl/cli_options.py `handle_errors`), the Python API lets them through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .check import Check, run_checks
from .config import DEFAULT_OVERLAP, DETAILS, MAX_PAGE_SIZE, SYNC_PARTS, Settings, mask_url
from .errors import InputError, RoomsyncError
from .outcomes import COUNTED, JsonObject
from .pipeline import Progress, Summary, run_ids
from .safe_text import visible
from .shard import Shard
from .signalwire import ClientStats
from .storage import ReportRow, Status, Store, current_revision, head_revision
from .sync import SyncResult, run_sync, run_via_list

if TYPE_CHECKING:
    from .fake_api import FakeSignalWire  # for typing only: the demo starts it (etl.demo)

log = logging.getLogger("etl.app")

SKIP_REASON = "another sync is running"
SHOWN_FAILED_IDS = 10


@runtime_checkable
class Result(Protocol):
    """What every command returns."""

    @property
    def run_id(self) -> int | None: ...

    @property
    def exit_code(self) -> int: ...

    @property
    def skipped(self) -> bool: ...

    def to_dict(self) -> JsonObject: ...

    def to_text(self) -> str: ...


class ClosingProgress(Progress, Protocol):
    """A progress display the run closes when it ends (etl.progress)."""

    def close(self) -> None: ...


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class RunOptions:
    """What every run (fetch, backfill, sync) takes besides its own options."""

    settings: Settings
    dry_run: bool = False
    metrics_file: str | None = None  # a dry run writes none
    progress: ClosingProgress | None = None
    handle_signals: bool = False  # the CLI: yes; the Python API: signals are the host's


@dataclass(frozen=True)
class BackfillOptions:
    retry_failed: bool = False  # the failure ledger's ids first
    refresh: bool = False  # also ask for ids stored final with their final cost
    via_list: bool = False  # one walk of the list first, by id only what it lacks
    shard: Shard | None = None
    with_parts: Collection[str] = DETAILS  # --with: the completed sessions' details too


@dataclass(frozen=True)
class SyncOptions:
    full: bool = False
    overlap: timedelta = DEFAULT_OVERLAP
    page_size: int = MAX_PAGE_SIZE
    with_parts: Collection[str] = SYNC_PARTS  # --with: the rest of the bill after the sessions


# --------------------------------------------------------------------------- run results


@dataclass(frozen=True)
class RunResult:
    """How one fetch, backfill or sync went: the same shape for all three. `summary` is None
    for a sync skipped because another held the lock; `sync` carries what the list walk saw."""

    command: str
    summary: Summary | None
    sync: SyncResult | None = None

    @property
    def run_id(self) -> int | None:
        return None if self.summary is None else self.summary.run_id

    @property
    def exit_code(self) -> int:
        return 0 if self.summary is None else self.summary.exit_code

    @property
    def skipped(self) -> bool:
        return self.summary is None

    def to_dict(self) -> JsonObject:
        """Counts are counts (`skipped` among them: ids left alone); the run being skipped is
        the separate flag `run_skipped`. The keys are the same for every run; a sync adds what
        its list walk saw."""
        summary = self.summary or Summary()
        counts = summary.to_dict()
        result: dict[str, Any] = {
            "command": self.command,
            "run_id": self.run_id,
            "run_skipped": self.skipped,
            "exit_code": self.exit_code,
            "dry_run": summary.dry_run,
            "requested": summary.requested,
            **{str(outcome): summary.counts[outcome] for outcome in COUNTED},
            "elapsed_s": counts["elapsed_s"],
            "failed_ids": counts["failed_ids"],
            "retries": summary.retries,
            "throttled": summary.throttled,
            "interrupted": summary.interrupted,
            "errors": list(summary.errors),
            # the rest of the bill (members, recordings, rooms, charges); null when not asked
            "bill": counts.get("bill"),
        }
        if self.command == "sync":
            result |= _sync_fields(self.sync)
        return result

    def to_text(self) -> str:
        if self.summary is None:
            return f"{self.command}: skipped, {SKIP_REASON}\n"
        return "\n".join(_run_lines(self)) + "\n"


def _sync_fields(sync: SyncResult | None) -> dict[str, Any]:
    listing = None if sync is None else sync.listing
    if sync is None or listing is None:
        return dict.fromkeys(
            ("listed", "refreshed", "in_progress_listed", "probe", "full_pass"), None
        ) | {"reason": SKIP_REASON}
    return {
        "listed": listing.listed,
        "refreshed": sync.refreshed,
        "in_progress_listed": sync.live_listed,
        "probe": None if sync.probe is None else str(sync.probe),
        "full_pass": listing.completed and not listing.stopped_early,
        "reason": None,
    }


def _run_lines(result: RunResult) -> list[str]:
    """The human summary: a few aligned lines."""
    facts = result.to_dict()
    summary = result.summary
    assert summary is not None
    run = "dry run, nothing written" if summary.dry_run else f"run {result.run_id}"
    lines = [
        f"{result.command + ':':<13} {run}, {summary.outcome} in {summary.elapsed_s:.1f}s",
        f"{'ids:':<13} {summary.requested} requested: "
        + ", ".join(f"{facts[str(o)]} {o.replace('_', ' ')}" for o in COUNTED),
    ]
    if summary.retries:
        lines.append(f"{'retries:':<13} {summary.retries} ({summary.throttled} after 429)")
    if result.command == "sync" and facts["listed"] is not None:
        every = " (every page)" if facts["full_pass"] else ""
        lines.append(
            f"{'listed:':<13} {facts['listed']} sessions{every}; "
            f"re-fetched {facts['refreshed']} unfinished or failed ones"
        )
    if summary.bill is not None:
        lines.append(f"{'bill:':<13} {visible(summary.bill.describe().removeprefix('bill: '))}")
    failed = sorted(summary.failures)  # what `failed_ids` holds
    if failed:
        more = " ..." if len(failed) > SHOWN_FAILED_IDS else ""
        lines.append(f"{'failed ids:':<13} {' '.join(failed[:SHOWN_FAILED_IDS])}{more}")
        lines.append(f"{'':<13} (re-run, or `backfill --retry-failed`, to retry them)")
    lines.extend(f"{'error:':<13} {visible(error)}" for error in summary.errors)
    if summary.interrupted:
        lines.append(f"{'stopped:':<13} by {summary.interrupted}; re-run to finish")
    return lines


# --------------------------------------------------------------------------- runs


def fetch(
    ids: Iterable[str], options: RunOptions, with_parts: Collection[str] = DETAILS
) -> RunResult:
    """`roomsync fetch`: these ids, every one asked for (and, with `with_parts`, the details
    of the completed ones)."""

    def call(store: Store, stats: ClientStats) -> Summary:
        return run_ids(
            ids,
            options.settings,
            store,
            command="fetch",
            with_parts=with_parts,
            progress=options.progress,
            handle_signals=options.handle_signals,
            dry_run=options.dry_run,
            stats=stats,
        )

    return _run("fetch", options, call)


def backfill(ids: Iterable[str], how: BackfillOptions, options: RunOptions) -> RunResult:
    """`roomsync backfill`: ids (streamed), ids stored final left alone unless `refresh`."""

    def call(store: Store, stats: ClientStats) -> Summary:
        if how.via_list:
            return run_via_list(
                ids,
                options.settings,
                store,
                refresh=how.refresh,
                with_parts=how.with_parts,
                progress=options.progress,
                handle_signals=options.handle_signals,
                dry_run=options.dry_run,
                stats=stats,
            )
        return run_ids(
            ids,
            options.settings,
            store,
            command="backfill",
            retry_failed=how.retry_failed,
            shard=how.shard,
            skip_exact=not how.refresh,
            with_parts=how.with_parts,
            progress=options.progress,
            handle_signals=options.handle_signals,
            dry_run=options.dry_run,
            stats=stats,
        )

    return _run("backfill", options, call)


def sync(how: SyncOptions, options: RunOptions) -> RunResult:
    """`roomsync sync`: skipped (exit 0) when another sync holds the lock."""

    def call(store: Store, stats: ClientStats) -> SyncResult:
        return run_sync(
            options.settings,
            store,
            full=how.full,
            overlap=how.overlap,
            page_size=how.page_size,
            with_parts=how.with_parts,
            progress=options.progress,
            handle_signals=options.handle_signals,
            dry_run=options.dry_run,
            stats=stats,
        )

    return _run("sync", options, call)


def _run(
    command: str, options: RunOptions, call: Callable[[Store, ClientStats], Summary | SyncResult]
) -> RunResult:
    """The store, the progress display and the metrics file around one run of `command`."""
    metrics_file = None if options.dry_run else options.metrics_file
    if metrics_file:
        from .metrics import check_writable

        check_writable(metrics_file)
    stats = ClientStats()
    with Store.open(options.settings.database_url, dry_run=options.dry_run) as store:
        outcome: Summary | SyncResult | None = None
        try:
            outcome = call(store, stats)
        finally:
            if options.progress is not None:
                options.progress.close()
            if metrics_file:
                ran = not (isinstance(outcome, SyncResult) and outcome.skipped)
                run_id = _summary_of(outcome).run_id if outcome is not None and ran else None
                _write_metrics(metrics_file, store, command, run_id, stats if ran else None)
    assert outcome is not None
    if isinstance(outcome, SyncResult):
        result = RunResult(command, outcome.summary, outcome)
    else:
        result = RunResult(command, outcome)
    log_summary(result)
    return result


def _summary_of(outcome: Summary | SyncResult) -> Summary:
    summary = outcome.summary if isinstance(outcome, SyncResult) else outcome
    assert summary is not None
    return summary


def _write_metrics(
    path: str, store: Store, command: str, run_id: int | None, stats: ClientStats | None
) -> None:
    """Write the metrics file; a failure is logged, never hides how the run itself ended.
    `run_id` None: the run ended in an error before returning it (the ledger's newest run of
    `command` is this one); `stats` None: no run was made (a skipped sync)."""
    from .metrics import RunTraffic, write_metrics

    traffic = None
    if stats is not None:
        traffic = RunTraffic(
            run_id=run_id, command=command, requests=dict(stats.requests), retries=stats.retries
        )
    try:
        write_metrics(path, store, traffic)
    except RoomsyncError as exc:
        log.error("metrics file not written: %s", exc)


def log_summary(result: RunResult) -> None:
    """The run's end as log lines on stderr (fields in JSON logs: the counts, retries,
    throttled, run_id, command), for cron mail, the journal and log pipelines."""
    command = result.command
    if result.summary is None:
        log.info("%s; skipped", SKIP_REASON, extra={"command": command, "skipped": True})
        return
    facts = result.summary.to_dict()
    counts = ", ".join(f"{facts[str(o)]} {o.replace('_', ' ')}" for o in COUNTED)
    fields = {k: v for k, v in facts.items() if k not in ("failed_ids", "errors")}
    fields["command"] = command
    if result.run_id is not None:
        fields["run_id"] = result.run_id
    dry = "dry run, nothing written: " if facts.get("dry_run") else ""
    retries = f"; {facts['retries']} retries ({facts['throttled']} after 429)"
    log.info(
        "%s%s ids in %.1fs: %s%s",
        dry,
        facts["requested"],
        facts["elapsed_s"],
        counts,
        retries if facts.get("retries") else "",
        extra=fields,
    )
    if result.sync is not None and result.sync.listing is not None:
        listing, live = result.sync.listing, result.sync.live_listed
        log.info(
            "listed %s sessions%s, %sre-fetched %s unfinished or failed ones",
            listing.listed,
            " (every page)" if listing.completed and not listing.stopped_early else "",
            f"{live} live ones through the in-progress filter, " if live else "",
            result.sync.refreshed,
            extra={"command": command},
        )
    for error in facts.get("errors", []):
        log.error(visible(error), extra={"command": command})
    failed = facts["failed_ids"]
    if failed:
        more = " ..." if len(failed) > SHOWN_FAILED_IDS else ""
        log.warning(
            "failed ids (re-run to retry): %s%s",
            " ".join(failed[:SHOWN_FAILED_IDS]),
            more,
            extra={"command": command, "failed_ids": failed[:SHOWN_FAILED_IDS]},
        )
    if facts.get("interrupted"):
        log.warning(
            "stopped by %s; what was fetched is stored, re-run to finish",
            facts["interrupted"],
            extra={"command": command},
        )


# --------------------------------------------------------------------------- read commands


@dataclass(frozen=True)
class StatusResult:
    """`roomsync status`: the read model over the ledger; with `max_age`, a health check."""

    status: Status
    database: str  # masked
    max_age: timedelta | None = None
    run_id: None = None
    skipped: bool = False

    @property
    def healthy(self) -> bool:
        return self.max_age is None or self.status.fresh(self.max_age)

    @property
    def over_budget(self) -> bool:
        return self.status.spend is not None and self.status.spend.over

    @property
    def exit_code(self) -> int:
        return 0 if self.healthy and not self.over_budget else 1

    def to_dict(self) -> JsonObject:
        result = self.status.to_dict()
        if self.max_age is not None:
            result["max_age_s"] = self.max_age.total_seconds()
            result["healthy"] = self.healthy
        return result

    def to_text(self) -> str:
        from .status import render_text

        return render_text(self.status, self.database)


def status(url: str, max_age: timedelta | None = None, budget: float | None = None) -> StatusResult:
    """Read the ledger (read-only, never creating a file); with `budget`, this UTC month's
    spend against it. A stale ledger, or a spend over the budget, is logged as an error."""
    with Store.open(url, readonly=True, at_head=False) as store:  # read_status checks it
        result = StatusResult(store.read_status(budget=budget), mask_url(url), max_age)
    if not result.healthy:
        age = result.status.sync_age()
        last = "no sync has ever succeeded" if age is None else f"the last ok sync ended {age} ago"
        if age is not None and age < timedelta(0):
            from .status import clock_problem

            last = clock_problem(result.status) or f"the last ok sync ended {-age} in the future"
        log.error("stale: %s (--max-age %s)", last, max_age, extra={"healthy": False})
    if result.over_budget and result.status.spend is not None:
        from .status import over_budget_message

        log.error("%s", over_budget_message(result.status.spend), extra={"over_budget": True})
    return result


@dataclass(frozen=True)
class CheckResult:
    """`roomsync check`: each check ok, failed or skipped (None)."""

    checks: list[Check]
    run_id: None = None
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 3

    def to_dict(self) -> JsonObject:
        return {
            "ok": self.ok,
            "checks": [c.to_dict() for c in self.checks],
            "exit_code": self.exit_code,
        }

    def to_text(self) -> str:
        marks = {True: "ok", None: "skipped", False: "FAILED"}
        return "".join(f"{c.name:<12} {marks[c.ok]:<8} {c.detail}\n" for c in self.checks)


def check(
    overrides: Mapping[str, object],
    env: dict[str, str],
    timeout: float,
    parts: Collection[str] = SYNC_PARTS,
) -> CheckResult:
    """Settings, database and credentials (and that the token reads each endpoint of `parts`),
    writing nothing; each failed check logged."""
    result = CheckResult(run_checks(overrides, env, timeout=timeout, parts=parts))
    for c in result.checks:
        if c.ok is False:
            log.error("check %s failed: %s", c.name, c.detail, extra={"check": c.name})
    return result


@dataclass(frozen=True)
class ReportResult:
    """`roomsync report`: the rows, rendered as asked; `output` None means stdout."""

    text: str
    rows: list[ReportRow]
    output: str | None = None
    run_id: None = None
    skipped: bool = False
    exit_code: int = 0

    def to_dict(self) -> JsonObject:
        return {"rows": [row.to_dict() for row in self.rows], "output": self.output}

    def to_text(self) -> str:
        """The report itself, or nothing when it went to a file."""
        return self.text if self.output is None else ""


@dataclass(frozen=True)
class ReportOptions:
    by: str = "day"
    since: datetime | None = None
    until: datetime | None = None
    fmt: str = "table"
    output: str | None = None  # None or "-": stdout


def report(url: str, how: ReportOptions, budget: float | None = None) -> ReportResult:
    """Read the rows (read-only) and render them; write them to `how.output` if given. The
    HTML page also shows this month's spend against `budget`. A range that is empty, or an
    HTML page without an output file, is an InputError, before the database is opened."""
    from .report import check_range, render_text

    try:
        check_range(how.since, how.until)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if how.fmt == "html" and how.output is None:
        raise InputError("--format html writes a page: give -o/--output FILE")
    with Store.open(url, readonly=True) as store:
        rows = store.report_rows(how.by, how.since, how.until)
        if how.fmt == "html":
            from .report_html import html_report

            text = html_report(store, how.by, how.since, how.until, budget)
        else:
            text = render_text(rows, how.fmt, how.by)
    output = None if how.output in (None, "-") else how.output
    if output is not None:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {output}: {exc.strerror or exc}") from None
        log.info("wrote %s", output)
    return ReportResult(text, list(rows), output)


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class SchemaResult:
    """Where the schema of a database is (`db upgrade`, `db downgrade`, `db current`)."""

    database: str  # masked
    revision: str | None
    head: str
    moved: bool = False  # upgrade/downgrade: the line names the database
    run_id: None = None
    skipped: bool = False
    exit_code: int = 0

    def to_dict(self) -> JsonObject:
        return {
            "database": self.database,
            "revision": self.revision,
            "head": self.head,
            "at_head": self.revision == self.head,
        }

    def to_text(self) -> str:
        where = f"{self.revision or 'base'}{' (head)' if self.revision == self.head else ''}"
        return f"{self.database} is at {where}\n" if self.moved else f"{where}\n"


def db_upgrade(url: str, revision: str = "head") -> SchemaResult:
    from .storage import upgrade

    upgrade(url, revision)
    return _schema(url, moved=True)


def db_downgrade(url: str, revision: str) -> SchemaResult:
    from .storage import downgrade

    downgrade(url, revision)
    return _schema(url, moved=True)


def db_current(url: str) -> SchemaResult:
    return _schema(url)


def _schema(url: str, moved: bool = False) -> SchemaResult:
    return SchemaResult(mask_url(url), current_revision(url), head_revision(), moved)


# --------------------------------------------------------------------------- demo


@dataclass(frozen=True)
class DemoResult:
    """`roomsync demo`: the backfill's and the sync's results, and the closing lines; with
    `--serve`, the settings that point the other commands at the stand-in."""

    backfill: RunResult
    sync: RunResult
    lines: list[str] = field(default_factory=list)
    environment: dict[str, str] | None = None
    command: str = "roomsync"
    run_id: None = None
    skipped: bool = False
    exit_code: int = 0

    def to_dict(self) -> JsonObject:
        result: JsonObject = {"backfill": self.backfill.to_dict(), "sync": self.sync.to_dict()}
        if self.environment is not None:
            result["environment"] = dict(self.environment)
        return result

    def to_text(self) -> str:
        lines = list(self.lines)
        if self.environment is not None:
            import shlex

            lines += ["", "The stand-in API stays up until Ctrl-C. In another shell:"]
            lines += [f"  export {k}={shlex.quote(v)}" for k, v in self.environment.items()]
            c = self.command
            lines.append(f"  {c} check && {c} sync && {c} report --by status")
        return "".join(f"{line}\n" for line in lines)


def demo(
    sessions: int, url: str, command: str = "roomsync", api: FakeSignalWire | None = None
) -> DemoResult:
    """The whole job against the stand-in; `command` is how the closing lines spell roomsync
    (the way that works where the user stands: etl.demo.how_to_run). With `api` (a stand-in
    from etl.demo.serving, kept up by the caller), the result also carries the settings that
    point every other command at it."""
    from .demo import demo_environment, run_demo

    backfill_summary, synced, lines = run_demo(sessions, url, api, command)
    return DemoResult(
        RunResult("backfill", backfill_summary),
        RunResult("sync", synced.summary, synced),
        lines,
        None if api is None else demo_environment(api, url),
        command,
    )
