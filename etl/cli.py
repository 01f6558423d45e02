"""The `roomsync` command line: each command parses its options, makes one call to the
application layer (etl.app) and prints the result: a human summary on stdout, or with `--json`
the same facts as one JSON object. Logs go to stderr.

Errors are mapped in one place (etl/cli_options.py `handle_errors`): a one-line message on
stderr and its exit code: 0 done, 1 some ids failed, 2 usage or bad input, 3 configuration, auth or
database. With `--json`, such an error is also one JSON object on stdout (`error`,
`exit_code`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click

from . import __version__, app
from .cli_options import (
    NO_HTTP_VERBOSE,
    Env,
    api_settings_options,
    database_option,
    emit,
    json_option,
    run_options,
    setup,
)
from .cli_types import OneLineGroup, confirm_or_refuse, option_type
from .config import DEFAULT_OVERLAP, GROUPINGS, MAX_PAGE_SIZE, TEXT_FORMATS, database_url
from .safe_text import visible


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


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="roomsync")
def main() -> None:
    """Copy SignalWire Video room sessions into a SQL database.

    Credentials come from SIGNALWIRE_SPACE, SIGNALWIRE_PROJECT_ID and SIGNALWIRE_API_TOKEN (the
    token is read from the environment or --env-file only, never from a flag); the database
    from DATABASE_URL. Results go to stdout (--json: one JSON object), logs to stderr.
    """


@main.command(
    epilog=_epilog("roomsync fetch 3f2a9b1c-0d4e-4f5a-8b6c-7d8e9f0a1b2c --dry-run", EXIT_RUN)
)
@click.argument("ids", nargs=-1, required=True)
@click.option("--skip-invalid", is_flag=True, help="Leave out invalid ids instead of stopping.")
@setup()
@run_options
def fetch(ids: tuple[str, ...], skip_invalid: bool, run: app.RunOptions, **rest: Any) -> int:
    """Fetch the given room session ids and upsert them."""
    from .idfiles import read_ids

    chosen = read_ids(ids, skip_invalid=skip_invalid, label="argument")
    return emit(app.fetch(chosen, run), rest["as_json"])


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
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Exit 0 when FILE holds no id (by default that is an error, exit 2: a producer "
    "that failed writes nothing).",
)
@setup()
@run_options
def backfill(
    file: str | None,
    skip_invalid: bool,
    retry_failed: bool,
    refresh: bool,
    via_list: bool,
    shard: str | None,
    allow_empty: bool,
    run: app.RunOptions,
    env: Env,
    as_json: bool,
) -> int:
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
    from .idfiles import IdSource, require_ids
    from .shard import parse_shard

    how = app.BackfillOptions(
        retry_failed=retry_failed,
        refresh=refresh,
        via_list=via_list,
        shard=parse_shard(shard, env) if shard is not None else None,
    )
    if file is None:
        return emit(app.backfill([], how, run), as_json)
    source = IdSource.from_path(file, skip_invalid=skip_invalid)
    try:
        if not allow_empty:
            require_ids(source, "--allow-empty")
        return emit(app.backfill(source, how, run), as_json)
    finally:
        source.close()


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
@setup()
@run_options
def sync(full: bool, overlap: float, page_size: int, run: app.RunOptions, **rest: Any) -> int:
    """Discover new sessions from the list, re-fetch unfinished and failed ones (for cron).

    When another sync holds the lock, does nothing and exits 0 (`"run_skipped": true` with
    --json). A dry run takes no lock and writes nothing.
    """
    how = app.SyncOptions(full=full, overlap=timedelta(hours=overlap), page_size=page_size)
    return emit(app.sync(how, run), rest["as_json"])


def _parsed(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback: the option's text through `parse`; its ValueError is the option's
    usage error."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    return callback


def _parse_duration(text: str) -> timedelta:
    from .status import parse_duration

    return parse_duration(text)


@main.command(
    epilog=_epilog(
        "roomsync status --max-age 30m   # exit 1 when no sync succeeded in 30 minutes",
        "  0    read (with --max-age: a sync succeeded within it)\n"
        "  1    with --max-age: no sync succeeded within it, or ever, or the clock disagrees\n"
        "  2    usage error\n"
        "  3    configuration or database problem (missing file, not migrated)",
    )
)
@click.option(
    "--max-age",
    metavar="DURATION",
    callback=_parsed(_parse_duration),
    help="Health check: exit 1 unless a sync succeeded within DURATION (90s, 15m, 2h, 1d).",
)
@json_option
@database_option
@setup(NO_HTTP_VERBOSE)
def status(max_age: timedelta | None, as_json: bool, database_url: str | None, env: Env) -> int:
    """What the database holds and how the last runs went; reads, never writes.

    Sessions stored, live and waiting for their final cost, failing ids, the newest session,
    the last run of each command, the last successful sync, the schema revision. A missing
    SQLite file is an error, never created.
    """
    return emit(app.status(_url(database_url, env), max_age), as_json)


def _url(flag: str | None, env: Env) -> str:
    return database_url({"database_url": flag}, env)


@main.command(
    epilog=_epilog(
        "roomsync check && roomsync sync",
        "  0    settings complete, database at the newest migration, credentials accepted\n"
        "  2    usage error\n"
        "  3    any of them is not",
    )
)
@click.option(
    "--timeout",
    type=option_type("timeout"),
    default=10.0,
    show_default=True,
    help="Seconds for the credential request.",
)
@json_option
@api_settings_options
@setup()
def check(as_json: bool, timeout: float, env: Env, **flags: Any) -> int:
    """Check the settings, the database and the credentials; write nothing.

    Names every missing setting at once; opens the database read-only (a missing SQLite file
    is reported, not created) and compares its revision with the newest migration; asks the
    API for one session of the list to see the credentials accepted. No ledger row is written.
    """
    return emit(app.check(flags, env, timeout), as_json)


@main.group()
def db() -> None:
    """Create, upgrade or inspect the database schema (Alembic migrations)."""


@db.command("upgrade", epilog=_epilog("roomsync db upgrade", EXIT_SIMPLE))
@click.argument("revision", default="head")
@json_option
@database_option
@setup(NO_HTTP_VERBOSE)
def db_upgrade(revision: str, as_json: bool, database_url: str | None, env: Env) -> int:
    """Upgrade the schema to REVISION (default: head)."""
    return emit(app.db_upgrade(_url(database_url, env), revision), as_json)


@db.command("downgrade", epilog=_epilog("roomsync db downgrade base", EXIT_SIMPLE))
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do it without asking (needed when not on a terminal).")
@json_option
@database_option
@setup(NO_HTTP_VERBOSE)
def db_downgrade(
    revision: str, yes: bool, as_json: bool, database_url: str | None, env: Env
) -> int:
    """Downgrade the schema to REVISION (`base` removes every table). Asks first, or needs --yes.

    Downgrading drops tables or columns, and the data in them.
    """
    confirm_or_refuse(
        yes,
        f"downgrade the schema to {visible(revision)}? Tables and the data in them are dropped",
        "db downgrade drops tables and their data: add --yes to confirm",
    )
    return emit(app.db_downgrade(_url(database_url, env), revision), as_json)


@db.command("current", epilog=_epilog("roomsync db current", EXIT_SIMPLE))
@json_option
@database_option
@setup(NO_HTTP_VERBOSE)
def db_current(as_json: bool, database_url: str | None, env: Env) -> int:
    """Print the schema revision the database is at (`base` when empty)."""
    return emit(app.db_current(_url(database_url, env)), as_json)


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
@json_option
@setup("Also log each HTTP request to the stand-in.", env_file=False)
def demo(sessions: int, database_url: str, as_json: bool, env: Env) -> int:
    """Run the whole job against a local stand-in API: migrate, backfill, summarise."""
    import shutil

    from .demo import how_to_run

    command = how_to_run(sys.argv[0], shutil.which("roomsync"), sys.executable)
    return emit(app.demo(sessions, database_url, command), as_json)


@main.command(
    epilog=_epilog("roomsync report --by week --since 2026-10-01 --format csv", EXIT_SIMPLE)
)
@click.option(
    "--since",
    metavar="DATE",
    callback=_parsed(lambda text: _report_bound(text)),
    help="From this moment, inclusive: YYYY-MM-DD or an ISO datetime (UTC unless an offset).",
)
@click.option(
    "--until",
    metavar="DATE",
    callback=_parsed(lambda text: _report_bound(text)),
    help="Up to this moment, exclusive.",
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
@setup(NO_HTTP_VERBOSE)
def report(database_url: str | None, env: Env, **options: Any) -> int:
    """Sessions, minutes and cost per day, week, month, room or status.

    A session counts in the period of its start time, or of its creation time when it never
    started. Sums cover the known values: a group with no known duration or cost shows none.
    """
    from .report import check_range

    how = app.ReportOptions(**options)
    try:
        check_range(how.since, how.until)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if how.fmt == "html" and how.output is None:
        raise click.UsageError("--format html writes a page: give -o/--output FILE")
    return emit(app.report(_url(database_url, env), how), False)


def _report_bound(text: str) -> Any:
    """--since/--until: a date or ISO datetime, UTC unless it says otherwise."""
    from .report import parse_bound

    return parse_bound(text)
