"""The `roomsync` command line: parses options, builds settings, calls the library.

Library errors (etl.errors) are turned into a one-line message on stderr and their exit code:
0 done, 1 some ids failed, 2 usage or bad input, 3 configuration, auth or database.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from . import __version__
from .config import (
    DEFAULT_MAX_BODY_MIB,
    DEFAULT_OVERLAP,
    GROUPINGS,
    MAX_PAGE_SIZE,
    MIB,
    TEXT_FORMATS,
    Settings,
)
from .errors import InputError, RoomsyncError
from .outcomes import COUNTED

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Map the project's exceptions to a one-line message and exit code (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RoomsyncError as exc:
            click.echo(f"roomsync: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("roomsync: interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


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
            type=click.IntRange(min=1),
            default=Settings.concurrency,
            show_default=True,
            help="Most requests in flight at once.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=Settings.timeout,
            show_default=True,
            help="Seconds for one whole HTTP request, from connect to the last byte.",
        ),
        click.option(
            "--retries",
            type=click.IntRange(min=1),
            default=Settings.retries,
            show_default=True,
            help="Attempts per id, the first included (1: no retry).",
        ),
        click.option(
            "--backoff",
            type=click.FloatRange(min=0),
            default=Settings.backoff,
            show_default=True,
            help="First retry wait in seconds; doubles per attempt, with jitter.",
        ),
        click.option(
            "--rate-limit",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            metavar="R",
            help="At most R requests per second (default: no limit).",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(1, 1000),
            default=Settings.batch_size,
            show_default=True,
            help="Sessions written per statement; a batch is committed as a whole.",
        ),
        click.option(
            "--max-body",
            type=click.IntRange(1, 1024),
            default=DEFAULT_MAX_BODY_MIB,
            show_default=True,
            metavar="MIB",
            help="Largest response body read, after decompression; a larger one fails its id.",
        ),
        click.option(
            "--max-pages",
            type=click.IntRange(min=1),
            default=Settings.max_pages,
            show_default=True,
            help="Most list pages one walk follows; more ends the walk as an error.",
        ),
        click.option(
            "--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout."
        ),
        click.option("-v", "--verbose", is_flag=True, help="Log each request."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="roomsync")
def main() -> None:
    """Copy SignalWire Video room sessions into a SQL database.

    Credentials come from SIGNALWIRE_SPACE, SIGNALWIRE_PROJECT_ID and SIGNALWIRE_API_TOKEN (the
    token is read from the environment only, never from a flag); the database from DATABASE_URL.
    """


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="roomsync: %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)


def _settings(options: dict[str, Any]) -> tuple[Settings, bool]:
    """Set-up shared by the commands that call the API: logging, then settings (the CLI's
    options over the environment). Returns the settings and whether --json was asked for."""
    from .config import load_settings

    as_json = bool(options.pop("as_json"))
    _configure_logging(options.pop("verbose"))
    options["max_body"] = options.pop("max_body") * MIB
    return load_settings(options), as_json


class _ProgressBar:
    """click's progress bar on a TTY, opened once the run knows how many ids it has."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, total: int | None) -> None:
        self._bar = click.progressbar(length=total, label="fetching", file=sys.stderr)
        self._bar.__enter__()

    def advance(self, done: int) -> None:
        self._bar.update(done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def _run(ids: Iterable[str], options: dict[str, Any], show_progress: bool, command: str) -> None:
    """Shared body of `fetch` and `backfill`: settings, schema check, run, summary, exit."""
    from .db import open_engine
    from .pipeline import run_ids

    retry_failed = bool(options.pop("retry_failed", False))
    shard = options.pop("shard", None)
    settings, as_json = _settings(options)
    bar = _ProgressBar() if show_progress and sys.stderr.isatty() and not as_json else None
    try:
        with open_engine(settings.database_url) as engine:
            summary = run_ids(
                ids,
                settings,
                engine,
                command=command,
                retry_failed=retry_failed,
                shard=shard,
                progress=bar,
                handle_signals=True,
            )
    finally:
        if bar is not None:
            bar.close()
    _report(summary.to_dict(), as_json)
    sys.exit(summary.exit_code)


def _report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result))
        return
    counts = ", ".join(f"{result[key]} {key.replace('_', ' ')}" for key in COUNTED)
    click.echo(
        f"roomsync: {result['requested']} ids in {result['elapsed_s']:.1f}s: {counts}", err=True
    )
    if "listed" in result:
        click.echo(
            f"roomsync: listed {result['listed']} sessions"
            f"{' (every page)' if result['full_pass'] else ''}, "
            f"re-fetched {result['refreshed']} unfinished or failed ones",
            err=True,
        )
    for error in result.get("errors", []):
        click.echo(f"roomsync: {error}", err=True)
    if result["failed_ids"]:
        shown = " ".join(result["failed_ids"][:10])
        more = " ..." if len(result["failed_ids"]) > 10 else ""
        click.echo(f"roomsync: failed ids (re-run to retry): {shown}{more}", err=True)
    if result.get("interrupted"):
        click.echo(
            f"roomsync: stopped by {result['interrupted']}; what was fetched is stored, "
            "re-run to finish",
            err=True,
        )


@main.command()
@click.argument("ids", nargs=-1, required=True)
@click.option("--skip-invalid", is_flag=True, help="Leave out invalid ids instead of stopping.")
@run_options
@handle_errors
def fetch(ids: tuple[str, ...], skip_invalid: bool, **options: Any) -> None:
    """Fetch the given room session ids and upsert them."""
    from .idfiles import read_ids

    _run(read_ids(ids, skip_invalid=skip_invalid, label="argument"), options, False, "fetch")


@main.command()
@click.argument("file", metavar="FILE", required=False)
@click.option("--skip-invalid", is_flag=True, help="Leave out invalid lines instead of stopping.")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Also (or, without FILE, only) retry the ids that failed in earlier runs.",
)
@click.option(
    "--shard",
    metavar="K/N",
    help="Take only shard K of N (K from 0) of the ids, by a stable hash of each id; "
    "index/N reads K from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).",
)
@run_options
@handle_errors
def backfill(
    file: str | None, skip_invalid: bool, retry_failed: bool, shard: str | None, **options: Any
) -> None:
    """Fetch every id in FILE (one per line; `-` reads stdin) and upsert them.

    Blank lines and `#` comments are skipped; duplicates are fetched once. Every line is checked
    before the first request. The file is streamed, so a file of millions of ids is fine.
    N workers run with --shard 0/N ... N-1/N on the same FILE fetch each id exactly once.
    """
    if file is None and not retry_failed:
        raise click.UsageError("give FILE, or --retry-failed, or both")
    from .idfiles import IdSource
    from .shard import parse_shard

    options["shard"] = parse_shard(shard) if shard is not None else None
    ids: Iterable[str] = []
    if file is not None:
        source = IdSource.from_path(file, skip_invalid=skip_invalid)
        click.get_current_context().call_on_close(source.close)
        ids = source
    _run(ids, {**options, "retry_failed": retry_failed}, True, "backfill")


@main.command()
@click.option("--full", is_flag=True, help="Walk every page of the list, whatever the watermark.")
@click.option(
    "--overlap",
    type=click.FloatRange(min=0),
    default=DEFAULT_OVERLAP.total_seconds() / 3600,
    show_default=True,
    metavar="HOURS",
    help="How far before the last watermark an early stop may come.",
)
@click.option(
    "--page-size",
    type=click.IntRange(1, MAX_PAGE_SIZE),
    default=MAX_PAGE_SIZE,
    show_default=True,
    help="Sessions per list page (the API allows at most 1000).",
)
@run_options
@handle_errors
def sync(full: bool, overlap: float, page_size: int, **options: Any) -> None:
    """Discover new sessions from the list, re-fetch unfinished and failed ones (for cron).

    When another sync holds the lock, does nothing and exits 0 (`{"skipped": true}` with --json).
    """
    from datetime import timedelta

    from .db import open_engine
    from .sync import run_sync

    settings, as_json = _settings(options)
    with open_engine(settings.database_url) as engine:
        result = run_sync(
            settings,
            engine,
            full=full,
            overlap=timedelta(hours=overlap),
            page_size=page_size,
            handle_signals=True,
        )
    if result.skipped:
        if as_json:
            click.echo(json.dumps(result.to_dict()))
        click.echo("roomsync: another sync is running; skipped", err=True)
        sys.exit(0)
    _report(result.to_dict(), as_json)
    sys.exit(result.exit_code)


@main.group()
def db() -> None:
    """Create, upgrade or inspect the database schema (Alembic migrations)."""


def _move_schema(move: Callable[[str, str], None], revision: str, url_option: str | None) -> None:
    """Run an Alembic move on the configured database and say where it ended."""
    from .config import database_url, mask_url
    from .db import current_revision

    url = database_url({"database_url": url_option})
    move(url, revision)
    click.echo(f"roomsync: {mask_url(url)} is at {current_revision(url) or 'base'}", err=True)


@db.command("upgrade")
@click.argument("revision", default="head")
@database_option
@handle_errors
def db_upgrade(revision: str, database_url: str | None) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    from .db import upgrade

    _move_schema(upgrade, revision, database_url)


@db.command("downgrade")
@click.argument("revision")
@database_option
@handle_errors
def db_downgrade(revision: str, database_url: str | None) -> None:
    """Downgrade the schema to REVISION (`base` removes every table)."""
    from .db import downgrade

    _move_schema(downgrade, revision, database_url)


@db.command("current")
@database_option
@handle_errors
def db_current(database_url: str | None) -> None:
    """Print the schema revision the database is at (`base` when empty)."""
    from .config import database_url as resolve_url
    from .db import current_revision, head_revision

    revision = current_revision(resolve_url({"database_url": database_url}))
    suffix = " (head)" if revision == head_revision() else ""
    click.echo(f"{revision or 'base'}{suffix}")


@main.command()
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

    if value is None:
        return None
    try:
        return parse_bound(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def _write_report(text: str, output: str | None) -> None:
    from pathlib import Path

    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"roomsync: wrote {output}", err=True)


@main.command()
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
@handle_errors
def report(
    since: Any, until: Any, by: str, fmt: str, output: str | None, database_url: str | None
) -> None:
    """Sessions, minutes and cost per day, week, month, room or status.

    A session counts in the period of its start time, or of its creation time when it never
    started. Sums cover the known values: a group with no known duration or cost shows none.
    """
    from .config import database_url as resolve_url
    from .db import open_engine
    from .report import check_range, render_text, report_rows

    try:
        check_range(since, until)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if fmt == "html" and output is None:
        raise click.UsageError("--format html writes a page: give -o/--output FILE")
    with open_engine(resolve_url({"database_url": database_url})) as engine:
        rows = report_rows(engine, by, since, until)
    if fmt == "html":
        from .report_html import render_html

        _write_report(render_html(rows, by, since, until), output)
    else:
        _write_report(render_text(rows, fmt, by), output)
