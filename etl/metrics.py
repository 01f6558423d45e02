"""`--metrics-file PATH`: a Prometheus text file for node_exporter's textfile collector.

Written after each run, atomically (prometheus-client's `write_to_textfile`: a temporary file in
the same directory, then rename), from a private registry. The file always describes every
command: the ledger gives each command's last run (start, end, outcome, ids per outcome) and last
success, and the status read model the table's figures. Requests by HTTP status and retries are
not in the ledger: the run writing the file gives its own, and the other commands' are carried
over from the file as it was, as long as they belong to the run the ledger still names as that
command's last (`roomsync_last_run_id`); otherwise they are left out rather than shown stale.

The month-to-date spend and the monthly budget (`--budget`'s environment variable,
ROOMSYNC_MONTHLY_BUDGET) are gauges in dollars, each absent while unknown. Every name starts
with `roomsync_`; the `outcome` label uses the words of etl.outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from .config import monthly_budget
from .errors import InputError
from .outcomes import COUNTED, RunOutcome
from .storage import Status, Store

PREFIX = "roomsync_"


@dataclass
class RunTraffic:
    """The HTTP side of one run, which the ledger does not keep."""

    run_id: int | None  # None: the command's newest run in the ledger
    command: str = ""
    requests: dict[str, int] = field(default_factory=dict)  # by status, or `error`
    retries: int = 0


def check_writable(path: str) -> None:
    """Refuse, before a run starts, a metrics file that could not be written after it."""
    directory = Path(path).resolve().parent
    if not directory.is_dir():
        raise InputError(f"--metrics-file: no directory {directory}")
    if Path(path).is_dir():
        raise InputError(f"--metrics-file: {path} is a directory")
    import os

    if not os.access(directory, os.W_OK):
        raise InputError(f"--metrics-file: cannot write in {directory}")


def previous_traffic(path: str) -> dict[str, RunTraffic]:
    """Per command, the traffic a file written earlier recorded (empty when there is none)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    traffic: dict[str, RunTraffic] = {}
    try:
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    except ValueError:
        return {}
    for sample in samples:
        if sample.name == f"{PREFIX}last_run_id" and "command" in sample.labels:
            command = sample.labels["command"]
            traffic[command] = RunTraffic(run_id=int(sample.value), command=command)
    for sample in samples:
        found = traffic.get(sample.labels.get("command", ""))
        if found is None:
            continue
        if sample.name == f"{PREFIX}last_run_requests" and "status" in sample.labels:
            found.requests[sample.labels["status"]] = int(sample.value)
        elif sample.name == f"{PREFIX}last_run_retries":
            found.retries = int(sample.value)
    return traffic


def build_registry(status: Status, traffic: Mapping[str, RunTraffic]) -> CollectorRegistry:
    """Every series, from the status read model and the traffic of each command's last run."""
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(PREFIX + name, doc, labels, registry=registry)

    sessions = gauge("sessions", "Sessions stored.")
    live = gauge("live_sessions", "Sessions stored as in-progress.")
    failing = gauge("failing_ids", "Ids waiting in the failure ledger (sync_failures).")
    awaiting = gauge("sessions_awaiting_final_cost", "Sessions waiting for their final cost.")
    failing_details = gauge(
        "failing_details",
        "Members or recordings of a session whose last fetch failed (sync_detail_failures).",
    )
    run_id = gauge("last_run_id", "Ledger id of the last run of each command.", ("command",))
    start = gauge("last_run_start_timestamp_seconds", "When the last run started.", ("command",))
    end = gauge(
        "last_run_end_timestamp_seconds",
        "When the last run finished (absent while it runs).",
        ("command",),
    )
    outcome = gauge(
        "last_run_outcome",
        "1 for how the last run ended, 0 for the others.",
        ("command", "outcome"),
    )
    ids = gauge("last_run_ids", "Ids of the last run per outcome.", ("command", "outcome"))
    requested = gauge("last_run_requested_ids", "Ids the last run asked for.", ("command",))
    success = gauge(
        "last_success_timestamp_seconds",
        "When the last run that ended ok finished.",
        ("command",),
    )
    requests = gauge(
        "last_run_requests",
        "HTTP responses of the last run by status (`error`: no response).",
        ("command", "status"),
    )
    retries = gauge("last_run_retries", "Requests the last run made again.", ("command",))
    spend = gauge(
        "month_to_date_spend_dollars",
        "Spend this UTC calendar month so far: daily_usage's cost (absent while unknown).",
    )
    budget = gauge("monthly_budget_dollars", "The monthly budget (absent without one).")

    sessions.set(status.sessions)
    live.set(status.live)
    failing.set(status.failing_ids)
    awaiting.set(status.awaiting_final_cost)
    failing_details.set(status.failing_details)
    for command, run in status.runs.items():
        run_id.labels(command).set(run.id)
        start.labels(command).set(run.started_at.timestamp())
        if run.finished_at is not None:
            end.labels(command).set(run.finished_at.timestamp())
        for ended in RunOutcome:
            outcome.labels(command, str(ended)).set(1 if run.outcome == ended else 0)
        for word in COUNTED:
            ids.labels(command, str(word)).set(run.counts.get(str(word), 0))
        requested.labels(command).set(run.counts.get("requested", 0))
        seen = traffic.get(command)
        if seen is not None and seen.run_id == run.id:
            for code, n in sorted(seen.requests.items()):
                requests.labels(command, code).set(n)
            retries.labels(command).set(seen.retries)
    if status.spend is not None and status.spend.spend_usd is not None:
        spend.set(status.spend.spend_usd)
    else:
        registry.unregister(spend)
    if status.spend is not None and status.spend.budget_usd is not None:
        budget.set(status.spend.budget_usd)
    else:
        registry.unregister(budget)
    for command, run in status.last_success.items():
        if run.finished_at is not None:
            success.labels(command).set(run.finished_at.timestamp())
    return registry


def write_metrics(
    path: str, store: Store, current: RunTraffic | None = None, budget: float | None = None
) -> None:
    """Write the file at `path` for every command; `current` is the run that just ended.
    `budget`: the monthly budget, else ROOMSYNC_MONTHLY_BUDGET's (through etl.config)."""
    traffic = previous_traffic(path)
    status = store.read_status(budget=monthly_budget(budget), spend=True)
    if current is not None and current.command in status.runs:
        newest = status.runs[current.command].id
        if current.run_id is None or current.run_id == newest:
            traffic[current.command] = RunTraffic(
                newest, current.command, current.requests, current.retries
            )
    registry = build_registry(status, traffic)
    try:
        write_to_textfile(path, registry)
    except OSError as exc:
        raise InputError(f"cannot write metrics file {path}: {exc.strerror or exc}") from None
