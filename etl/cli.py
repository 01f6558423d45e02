"""The `roomsync` command line: parses options, builds settings, calls the library.

Library errors (etl.errors) are turned into a one-line message on stderr and their exit code:
0 done, 1 some ids failed, 2 usage or bad input, 3 configuration, auth or database. With
`--json`, such an error is also one JSON object on stdout (`error`, `exit_code`).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from . import __version__, logs
from .cli_types import OneLineGroup, confirm_or_refuse, option_type
from .config import (
    DEFAULT_MAX_BODY_MIB,
    DEFAULT_OVERLAP,
    DETAILS,
    GROUPINGS,
    MAX_PAGE_SIZE,
    MIB,
    MIN_RATE_LIMIT,
    SYNC_PARTS,
    TEXT_FORMATS,
    Settings,
)
from .errors import InputError, RoomsyncError
from .outcomes import COUNTED
from .safe_text import visible

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("etl.cli")


def _fail(message: str, exit_code: int, as_json: bool) -> None:
    """Say why the command stops, on stderr (and on stdout as JSON with --json), and exit."""
    if as_json:
        click.echo(json.dumps({"error": message, "exit_code": exit_code}))
    if logs.current_format() == "json":
        log.error(message, extra={"exit_code": exit_code})
    else:
        click.echo(
            f"roomsync: {message}" if exit_code == 130 else f"roomsync: error: {message}", err=True
        )
    sys.exit(exit_code)


def handle_errors(func: F) -> F:
    """Map the project's exceptions to a one-line message and exit code (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        try:
            return func(*args, **kwargs)
        except RoomsyncError as exc:
            _fail(visible(str(exc)), exc.exit_code, as_json)
        except KeyboardInterrupt:
            _fail("interrupted", 130, as_json)
        except click.ClickException as exc:
            if as_json:
                click.echo(json.dumps({"error": exc.format_message(), "exit_code": exc.exit_code}))
            raise

    return wrapper  # type: ignore[return-value]


def log_options(func: F) -> F:
    """--log-format, -v and -q on every command; logging is set up before the command runs.
    Put it right above @handle_errors (below every click option)."""

    @functools.wraps(func)
    def wrapper(*args: Any, log_format: str, verbose: bool, quiet: bool, **kwargs: Any) -> Any:
        if verbose and quiet:
            raise click.UsageError("-v and -q exclude each other")
        verbosity = logs.VERBOSE if verbose else logs.QUIET if quiet else logs.NORMAL
        logs.configure(log_format, verbosity)
        return func(*args, **kwargs)

    options = [
        click.option(
            "--log-format",
            type=click.Choice(logs.FORMATS),
            default="text",
            show_default=True,
            envvar=logs.ENV_LOG_FORMAT,
            show_envvar=True,
            help="text: timestamp, level, message; json: one object per line.",
        ),
        click.option("-v", "--verbose", is_flag=True, help="Also log each HTTP request."),
        click.option("-q", "--quiet", is_flag=True, help="Log errors only."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


def _epilog(example: str, codes: str) -> str:
    """The end of a command's --help: an example and its exit codes (kept as written)."""
    return f"\b\nExample:\n  {example}\n\n\b\nExit codes:\n{codes}"


EXIT_RUN = (
    "  0    every id stored or confirmed not found\n"
    "  1    some ids failed (re-run to retry them)\n"
    "  2    usage error or bad input\n"
    "  3    configuration, credentials or database problem\n"
    "  130  stopped by SIGINT, 143 by SIGTERM"
)
EXIT_SIMPLE = "  0    done\n  2    usage error\n  3    configuration or database problem"


def _with_parts(allowed: tuple[str, ...]) -> Callable[[click.Context, click.Parameter, str], Any]:
    """--with: comma-separated parts of the bill, or none (etl.config.parse_with)."""
    from .config import parse_with

    return lambda ctx, param, value: _parsed(
        lambda text: parse_with(text, allowed), ctx, param, value
    )


def with_option(allowed: tuple[str, ...], what: str) -> Callable[[F], F]:
    return click.option(
        "--with",
        "with_parts",
        default=",".join(allowed),
        show_default=True,
        metavar="PARTS",
        callback=_with_parts(allowed),
        help=f"{what}: comma-separated, from {', '.join(allowed)}; `none` for sessions only.",
    )


def database_option(func: F) -> F:
    return click.option(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL [env DATABASE_URL; default sqlite:///room_sessions.db].",
    )(func)


def run_options(func: F) -> F:
    """Options shared by every command that calls the API."""
    options = [
        click.option("--space", help="Space name, host or base URL [env SIGNALWIRE_SPACE]."),
        click.option("--project-id", help="Project ID [env SIGNALWIRE_PROJECT_ID]."),
        database_option,
        click.option(
            "--concurrency",
            type=option_type("concurrency"),
            default=Settings.concurrency,
            show_default=True,
            help="Most requests in flight at once.",
        ),
        click.option(
            "--timeout",
            type=option_type("timeout"),
            default=Settings.timeout,
            show_default=True,
            help="Seconds for one whole HTTP request, from connect to the last byte.",
        ),
        click.option(
            "--retries",
            type=option_type("retries"),
            default=Settings.retries,
            show_default=True,
            help="Attempts per id, the first included (1: no retry).",
        ),
        click.option(
            "--backoff",
            type=option_type("backoff"),
            default=Settings.backoff,
            show_default=True,
            help="First retry wait in seconds; doubles per attempt, with jitter.",
        ),
        click.option(
            "--rate-limit",
            type=option_type("rate_limit"),
            default=None,
            metavar="R",
            help=f"At most R requests per second, at least {MIN_RATE_LIMIT} (default: no limit).",
        ),
        click.option(
            "--batch-size",
            type=option_type("batch_size"),
            default=Settings.batch_size,
            show_default=True,
            help="Sessions written per statement; a batch is committed as a whole.",
        ),
        click.option(
            "--max-body",
            type=option_type("max_body_mib"),
            default=DEFAULT_MAX_BODY_MIB,
            show_default=True,
            metavar="MIB",
            help="Largest response body read, after decompression; a larger one fails its id.",
        ),
        click.option(
            "--max-pages",
            type=option_type("max_pages"),
            default=Settings.max_pages,
            show_default=True,
            help="Most list pages one walk follows; more ends the walk as an error.",
        ),
        click.option(
            "--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout."
        ),
        click.option(
            "--dry-run",
            is_flag=True,
            help="Fetch and validate, say what would be inserted, updated or unchanged; "
            "write nothing (no rows, no ledger).",
        ),
        click.option(
            "--progress-every",
            type=click.FloatRange(min=0),
            default=60.0,
            show_default=True,
            metavar="SECONDS",
            help="When stderr is not a terminal, a progress log line this often (0: none).",
        ),
        click.option(
            "--metrics-file",
            metavar="PATH",
            help="After the run, write Prometheus metrics there (node_exporter textfile).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="roomsync")
def main() -> None:
    """Copy SignalWire Video room sessions into a SQL database.

    Credentials come from SIGNALWIRE_SPACE, SIGNALWIRE_PROJECT_ID and SIGNALWIRE_API_TOKEN (the
    token is read from the environment only, never from a flag); the database from DATABASE_URL.
    """


def _settings(options: dict[str, Any]) -> tuple[Settings, bool]:
    """Settings for the commands that call the API (the CLI's options over the environment).
    Returns the settings and whether --json was asked for."""
    from .config import load_settings

    as_json = bool(options.pop("as_json"))
    options["max_body"] = options.pop("max_body") * MIB
    return load_settings(options), as_json


def _run(ids: Iterable[str], options: dict[str, Any], command: str) -> None:
    """Shared body of `fetch` and `backfill`: settings, schema check, run, summary, exit."""
    from .pipeline import run_ids

    retry_failed = bool(options.pop("retry_failed", False))
    refresh = bool(options.pop("refresh", True))
    via_list = bool(options.pop("via_list", False))
    shard = options.pop("shard", None)
    with_parts = options.pop("with_parts")

    def call(settings: Settings, store: Any, how: dict[str, Any]) -> Any:
        if via_list:
            from .sync import run_via_list

            return run_via_list(ids, settings, store, refresh=refresh, with_parts=with_parts, **how)
        return run_ids(
            ids,
            settings,
            store,
            command=command,
            retry_failed=retry_failed,
            shard=shard,
            skip_exact=not refresh,
            with_parts=with_parts,
            **how,
        )

    summary, as_json = _run_command(command, options, call)
    _report(summary.to_dict(), as_json, command, summary.run_id)
    sys.exit(summary.exit_code)


def _run_command(
    command: str, options: dict[str, Any], call: Callable[[Settings, Any, dict[str, Any]], Any]
) -> tuple[Any, bool]:
    """Settings, the store, progress and the metrics file around one run of `command`.

    `call(settings, store, how)` runs it, passing `how` (progress, signals, dry run, client
    stats) on to the library. Returns its result and whether --json was asked for.
    """
    from .signalwire import ClientStats
    from .storage import Store

    dry_run = bool(options.pop("dry_run"))
    metrics_file = options.pop("metrics_file")
    if dry_run:
        metrics_file = None  # a dry run writes nothing
    every = float(options.pop("progress_every"))
    settings, as_json = _settings(options)
    if metrics_file:
        from .metrics import check_writable

        check_writable(metrics_file)
    progress = _progress(every, as_json)
    stats = ClientStats()
    how = {"progress": progress, "handle_signals": True, "dry_run": dry_run, "stats": stats}
    with Store.open(settings.database_url, dry_run=dry_run) as store:
        result: Any = None
        try:
            result = call(settings, store, how)
        finally:
            if progress is not None:
                progress.close()
            if metrics_file:
                # a skipped sync made no run: the file is rewritten from the ledger alone
                skipped = bool(getattr(result, "skipped", False))
                summary = getattr(result, "summary", result)
                run_id = getattr(summary, "run_id", None)
                _write_metrics(metrics_file, store, command, run_id, None if skipped else stats)
    return result, as_json


def _progress(every: float, as_json: bool) -> Any:
    """A bar on a terminal; elsewhere a progress log line every `every` seconds."""
    from .progress import ProgressLog, TerminalProgress

    if sys.stderr.isatty():
        return None if as_json or logs.quiet() else TerminalProgress(sys.stderr)
    return ProgressLog(every) if every > 0 else None


def _write_metrics(
    path: str, store: Any, command: str, run_id: int | None, stats: Any | None
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


def _report(result: dict[str, Any], as_json: bool, command: str, run_id: int | None) -> None:
    """The summary: JSON on stdout with --json; log lines on stderr in any case (fields in
    JSON logs: the counts, retries, throttled, run_id, command)."""
    if as_json:
        click.echo(json.dumps(result))
    counts = ", ".join(
        f"{result[key]} {key.replace('_', ' ')}"
        for key in COUNTED
        if not isinstance(result[key], bool)  # sync's `skipped` is a flag, not a count
    )
    fields = {k: v for k, v in result.items() if k not in ("failed_ids", "errors")}
    fields["command"] = command
    if run_id is not None:
        fields["run_id"] = run_id
    dry = "dry run, nothing written: " if result.get("dry_run") else ""
    retries = f"; {result['retries']} retries ({result['throttled']} after 429)"
    log.info(
        "%s%s ids in %.1fs: %s%s",
        dry,
        result["requested"],
        result["elapsed_s"],
        counts,
        retries if result.get("retries") else "",
        extra=fields,
    )
    if "listed" in result:
        log.info(
            "listed %s sessions%s, %sre-fetched %s unfinished or failed ones",
            result["listed"],
            " (every page)" if result["full_pass"] else "",
            _live_listed(result),
            result["refreshed"],
            extra={"command": command},
        )
    for error in result.get("errors", []):
        log.error(visible(error), extra={"command": command})
    if result["failed_ids"]:
        shown = " ".join(result["failed_ids"][:10])
        more = " ..." if len(result["failed_ids"]) > 10 else ""
        log.warning(
            "failed ids (re-run to retry): %s%s",
            shown,
            more,
            extra={"command": command, "failed_ids": result["failed_ids"][:10]},
        )
    if result.get("interrupted"):
        log.warning(
            "stopped by %s; what was fetched is stored, re-run to finish",
            result["interrupted"],
            extra={"command": command},
        )


def _live_listed(result: dict[str, Any]) -> str:
    listed = result.get("in_progress_listed") or 0
    return f"{listed} live ones through the in-progress filter, " if listed else ""


@main.command(
    epilog=_epilog("roomsync fetch 3f2a9b1c-0d4e-4f5a-8b6c-7d8e9f0a1b2c --dry-run", EXIT_RUN)
)
@click.argument("ids", nargs=-1, required=True)
@click.option("--skip-invalid", is_flag=True, help="Leave out invalid ids instead of stopping.")
@with_option(DETAILS, "Also fetch these of each completed session")
@run_options
@log_options
@handle_errors
def fetch(ids: tuple[str, ...], skip_invalid: bool, **options: Any) -> None:
    """Fetch the given room session ids and upsert them."""
    from .idfiles import read_ids

    _run(read_ids(ids, skip_invalid=skip_invalid, label="argument"), options, "fetch")


@main.command(epilog=_epilog("roomsync backfill ids.txt --json --concurrency 20", EXIT_RUN))
@click.argument("file", metavar="FILE", required=False)
@click.option("--skip-invalid", is_flag=True, help="Leave out invalid lines instead of stopping.")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Also (or, without FILE, only) retry the ids that failed in earlier runs.",
)
@click.option(
    "--refresh",
    is_flag=True,
    help="Also fetch ids stored final with their final cost (skipped otherwise).",
)
@click.option(
    "--via-list",
    is_flag=True,
    help="Take FILE's ids from one walk of the list; fetch by id only those it lacks.",
)
@click.option(
    "--shard",
    metavar="K/N",
    help="Take only shard K of N (K from 0) of the ids, by a stable hash of each id; "
    "index/N reads K from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).",
)
@with_option(DETAILS, "Also fetch these of each completed session")
@run_options
@log_options
@handle_errors
def backfill(
    file: str | None,
    skip_invalid: bool,
    retry_failed: bool,
    shard: str | None,
    refresh: bool,
    via_list: bool,
    **options: Any,
) -> None:
    """Fetch every id in FILE (one per line; `-` reads stdin) and upsert them.

    Blank lines and `#` comments are skipped; duplicates are fetched once. Every line is checked
    before the first request. The file is streamed, so a file of millions of ids is fine.
    N workers run with --shard 0/N ... N-1/N on the same FILE fetch each id exactly once. Ids
    stored final with their final cost are skipped unless --refresh. --via-list walks the list
    once (1,000 sessions a request) and fetches by id only the ids it did not return.
    """
    if file is None and not retry_failed:
        raise click.UsageError("give FILE, or --retry-failed, or both")
    if via_list and (file is None or retry_failed or shard is not None):
        raise click.UsageError(
            "--via-list needs FILE and goes with neither --retry-failed nor --shard"
        )
    from .idfiles import IdSource
    from .shard import parse_shard

    options["shard"] = parse_shard(shard) if shard is not None else None
    ids: Iterable[str] = []
    if file is not None:
        source = IdSource.from_path(file, skip_invalid=skip_invalid)
        click.get_current_context().call_on_close(source.close)
        ids = source
    extra = {"retry_failed": retry_failed, "refresh": refresh, "via_list": via_list}
    _run(ids, {**options, **extra}, "backfill")


@main.command(
    epilog=_epilog(
        "roomsync sync --metrics-file /var/lib/node_exporter/roomsync.prom",
        EXIT_RUN.replace("some ids failed", "some ids, or the list, failed")
        + "\n  (another sync running: skipped, exit 0)",
    )
)
@click.option("--full", is_flag=True, help="Walk every page of the list, whatever the watermark.")
@click.option(
    "--overlap",
    type=option_type("overlap_hours"),
    default=DEFAULT_OVERLAP.total_seconds() / 3600,
    show_default=True,
    metavar="HOURS",
    help="How far before the last watermark an early stop may come.",
)
@click.option(
    "--page-size",
    type=option_type("page_size"),
    default=MAX_PAGE_SIZE,
    show_default=True,
    help="Sessions per list page (the API allows at most 1000).",
)
@with_option(SYNC_PARTS, "Also sync these")
@run_options
@log_options
@handle_errors
def sync(
    full: bool, overlap: float, page_size: int, with_parts: frozenset[str], **options: Any
) -> None:
    """Discover new sessions from the list, re-fetch unfinished and failed ones (for cron).

    When another sync holds the lock, does nothing and exits 0 (`{"skipped": true}` with --json).
    A dry run takes no lock and writes nothing.
    """
    from datetime import timedelta

    from .sync import run_sync

    def call(settings: Settings, store: Any, how: dict[str, Any]) -> Any:
        return run_sync(
            settings,
            store,
            full=full,
            overlap=timedelta(hours=overlap),
            page_size=page_size,
            with_parts=with_parts,
            **how,
        )

    result, as_json = _run_command("sync", options, call)
    if result.skipped:
        if as_json:
            click.echo(json.dumps(result.to_dict()))
        log.info("another sync is running; skipped", extra={"command": "sync", "skipped": True})
        sys.exit(0)
    _report(result.to_dict(), as_json, "sync", result.summary.run_id)
    sys.exit(result.exit_code)


@main.command(
    epilog=_epilog(
        "roomsync status --max-age 30m   # exit 1 when no sync succeeded in 30 minutes",
        "  0    read (with --max-age: a sync succeeded within it)\n"
        "  1    with --max-age: no sync succeeded within it, or ever\n"
        "  2    usage error\n"
        "  3    configuration or database problem (missing file, not migrated)",
    )
)
@click.option(
    "--max-age",
    metavar="DURATION",
    callback=lambda ctx, param, value: _duration(ctx, param, value),
    help="Health check: exit 1 unless a sync succeeded within DURATION (90s, 15m, 2h, 1d).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@database_option
@log_options
@handle_errors
def status(max_age: Any, as_json: bool, database_url: str | None) -> None:
    """What the database holds and how the last runs went; reads, never writes.

    Sessions stored, live and waiting for their final cost, failing ids, the newest session,
    the last run of each command, the last successful sync, the schema revision. A missing
    SQLite file is an error, never created.
    """
    from .config import database_url as resolve_url
    from .config import mask_url
    from .status import render_text
    from .storage import Store

    url = resolve_url({"database_url": database_url})
    with Store.open(url, readonly=True, at_head=False) as store:  # read_status checks it
        current = store.read_status()
    result = current.to_dict()
    healthy = True
    if max_age is not None:
        healthy = current.fresh(max_age)
        result["max_age_s"] = max_age.total_seconds()
        result["healthy"] = healthy
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(render_text(current, mask_url(url)), nl=False)
    if not healthy:
        age = current.sync_age()
        last = "no sync has ever succeeded" if age is None else f"the last ok sync ended {age} ago"
        log.error("stale: %s (--max-age %s)", last, max_age, extra={"healthy": False})
        sys.exit(1)


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """--max-age: 90s, 15m, 2h, 1d."""
    from .status import parse_duration

    return _parsed(parse_duration, ctx, param, value)


def _parsed(
    parse: Callable[[str], Any], ctx: click.Context, param: click.Parameter, value: str | None
) -> Any:
    """An option's text through `parse`; its ValueError is the option's usage error."""
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@main.command(
    epilog=_epilog(
        "roomsync check && roomsync sync",
        "  0    settings complete, database at the newest migration, credentials accepted\n"
        "  2    usage error\n"
        "  3    any of them is not",
    )
)
@click.option("--space", help="Space name, host or base URL [env SIGNALWIRE_SPACE].")
@click.option("--project-id", help="Project ID [env SIGNALWIRE_PROJECT_ID].")
@database_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds for the credential request.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@with_option(SYNC_PARTS, "Also check the token can read these")
@log_options
@handle_errors
def check(as_json: bool, timeout: float, with_parts: frozenset[str], **options: Any) -> None:
    """Check the settings, the database and the credentials; write nothing.

    Names every missing setting at once; opens the database read-only (a missing SQLite file
    is reported, not created) and compares its revision with the newest migration; asks the
    API for one session of the list to see the credentials accepted. No ledger row is written.
    """
    from .check import run_checks

    checks = run_checks(options, timeout=timeout, parts=with_parts)
    ok = all(c.ok for c in checks)
    code = 0 if ok else 3
    if as_json:
        click.echo(
            json.dumps({"ok": ok, "checks": [c.to_dict() for c in checks], "exit_code": code})
        )
    else:
        for c in checks:
            mark = "ok" if c.ok else "skipped" if c.ok is None else "FAILED"
            click.echo(f"{c.name:<12} {mark:<8} {c.detail}")
    for c in checks:
        if c.ok is False:
            log.error("check %s failed: %s", c.name, c.detail, extra={"check": c.name})
    sys.exit(code)


@main.group()
def db() -> None:
    """Create, upgrade or inspect the database schema (Alembic migrations)."""


def _move_schema(move: Callable[[str, str], None], revision: str, url_option: str | None) -> None:
    """Run an Alembic move on the configured database and say where it ended."""
    from .config import database_url, mask_url
    from .storage import current_revision

    url = database_url({"database_url": url_option})
    move(url, revision)
    log.info("%s is at %s", mask_url(url), current_revision(url) or "base")


@db.command("upgrade", epilog=_epilog("roomsync db upgrade", EXIT_SIMPLE))
@click.argument("revision", default="head")
@database_option
@log_options
@handle_errors
def db_upgrade(revision: str, database_url: str | None) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    from .storage import upgrade

    _move_schema(upgrade, revision, database_url)


@db.command("downgrade", epilog=_epilog("roomsync db downgrade base", EXIT_SIMPLE))
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do it without asking (needed when not on a terminal).")
@database_option
@log_options
@handle_errors
def db_downgrade(revision: str, yes: bool, database_url: str | None) -> None:
    """Downgrade the schema to REVISION (`base` removes every table). Asks first, or needs --yes.

    Downgrading drops tables or columns, and the data in them.
    """
    from .storage import downgrade

    confirm_or_refuse(
        yes,
        f"downgrade the schema to {visible(revision)}? Tables and the data in them are dropped",
        "db downgrade drops tables and their data: add --yes to confirm",
    )
    _move_schema(downgrade, revision, database_url)


@db.command("current", epilog=_epilog("roomsync db current", EXIT_SIMPLE))
@database_option
@log_options
@handle_errors
def db_current(database_url: str | None) -> None:
    """Print the schema revision the database is at (`base` when empty)."""
    from .config import database_url as resolve_url
    from .storage import current_revision, head_revision

    revision = current_revision(resolve_url({"database_url": database_url}))
    suffix = " (head)" if revision == head_revision() else ""
    click.echo(f"{revision or 'base'}{suffix}")


@main.command(epilog=_epilog("roomsync demo --sessions 500", EXIT_SIMPLE))
@click.option(
    "--sessions",
    type=click.IntRange(1, 100_000),
    default=200,
    show_default=True,
    help="How many sessions the stand-in API serves.",
)
@click.option(
    "--database-url",
    default="sqlite:///roomsync-demo.db",
    show_default=True,
    help="Where the demo writes (its own file, not DATABASE_URL).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
@log_options
@handle_errors
def demo(sessions: int, database_url: str, as_json: bool) -> None:
    """Run the whole job against a local stand-in API: migrate, backfill, summarise."""
    from .demo import run_demo

    result = run_demo(sessions, database_url)
    if as_json:
        click.echo(json.dumps(result))
        return
    for line in result["lines"]:
        click.echo(line)


def _report_bound(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """--since/--until: a date or ISO datetime, UTC unless it says otherwise."""
    from .report import parse_bound

    return _parsed(parse_bound, ctx, param, value)


def _write_report(text: str, output: str | None) -> None:
    from pathlib import Path

    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from None
    log.info("wrote %s", output)


@main.command(
    epilog=_epilog("roomsync report --by week --since 2026-10-01 --format csv", EXIT_SIMPLE)
)
@click.option(
    "--since",
    metavar="DATE",
    callback=_report_bound,
    help="From this moment, inclusive: YYYY-MM-DD or an ISO datetime (UTC unless an offset).",
)
@click.option(
    "--until", metavar="DATE", callback=_report_bound, help="Up to this moment, exclusive."
)
@click.option(
    "--by",
    type=click.Choice(GROUPINGS),
    default="day",
    show_default=True,
    help="Group by UTC day, ISO week (labelled by its Monday), month, room or status.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice([*TEXT_FORMATS, "html"]),
    default="table",
    show_default=True,
    help="html is one self-contained page with a chart; it needs -o.",
)
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
@database_option
@log_options
@handle_errors
def report(
    since: Any, until: Any, by: str, fmt: str, output: str | None, database_url: str | None
) -> None:
    """Sessions, minutes and cost per day, week, month, room or status.

    A session counts in the period of its start time, or of its creation time when it never
    started. Sums cover the known values: a group with no known duration or cost shows none.
    """
    from .config import database_url as resolve_url
    from .report import check_range, render_text
    from .storage import Store

    try:
        check_range(since, until)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if fmt == "html" and output is None:
        raise click.UsageError("--format html writes a page: give -o/--output FILE")
    with Store.open(resolve_url({"database_url": database_url}), readonly=True) as store:
        rows = store.report_rows(by, since, until)
    if fmt == "html":
        from .report_html import render_html

        _write_report(render_html(rows, by, since, until), output)
    else:
        _write_report(render_text(rows, fmt, by), output)
