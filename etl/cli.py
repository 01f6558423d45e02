"""The `roomsync` command line: each command parses its options, makes one call to the
application layer (etl.app) and prints the result: a human summary on stdout, or with `--json`
the same facts as one JSON object. Logs go to stderr.

Errors are mapped in one place (etl/cli_options.py `handle_errors`): a one-line message on
stderr and its exit code (0 done, 1 some ids failed, 2 usage or bad input, 3 configuration,
auth or database); with `--json`, also one JSON object on stdout (`error`, `exit_code`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click

from . import app
from .cli_options import (
    EXIT_RUN,
    EXIT_SIMPLE,
    NO_HTTP_VERBOSE,
    Env,
    api_settings_options,
    check_backfill_usage,
    database_option,
    demo_command,
    emit,
    epilog,
    json_option,
    parse_duration,
    parsed,
    print_deploy_files,
    report_bound,
    run_options,
    serve_demo,
    setup,
    url_of,
    version_option,
    with_option,
)
from .cli_types import OneLineGroup, confirm_or_refuse, option_type
from .config import (
    DEFAULT_OVERLAP,
    DETAILS,
    GROUPINGS,
    MAX_PAGE_SIZE,
    SYNC_PARTS,
    TEXT_FORMATS,
    monthly_budget,
    parse_budget,
)
from .safe_text import visible


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@version_option
def main() -> None:
    """Copy SignalWire Video room sessions into a SQL database.

    Credentials come from SIGNALWIRE_SPACE, SIGNALWIRE_PROJECT_ID and SIGNALWIRE_API_TOKEN (the
    token is read from the environment or --env-file only, never from a flag); the database
    from DATABASE_URL. Results go to stdout (--json: one JSON object), logs to stderr.
    """


@main.command(
    epilog=epilog("roomsync fetch 3f2a9b1c-0d4e-4f5a-8b6c-7d8e9f0a1b2c --dry-run", EXIT_RUN)
)
@click.argument("ids", nargs=-1, required=True)
@click.option("--skip-invalid", is_flag=True, help="Leave out invalid ids instead of stopping.")
@with_option(DETAILS, "Also fetch these of each completed session")
@setup()
@run_options
def fetch(
    ids: tuple[str, ...],
    skip_invalid: bool,
    with_parts: frozenset[str],
    run: app.RunOptions,
    env: Env,
    as_json: bool,
) -> int:
    """Fetch the given room session ids and upsert them."""
    from .idfiles import read_ids

    chosen = read_ids(ids, skip_invalid=skip_invalid, label="argument")
    return emit(app.fetch(chosen, run, with_parts), as_json)


@main.command(epilog=epilog("roomsync backfill ids.txt --json --concurrency 20", EXIT_RUN))
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
@with_option(DETAILS, "Also fetch these of each completed session")
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
    with_parts: frozenset[str],
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
    check_backfill_usage(file, retry_failed, via_list, shard)
    from .idfiles import IdSource, require_ids
    from .shard import parse_shard

    how = app.BackfillOptions(
        retry_failed=retry_failed,
        refresh=refresh,
        via_list=via_list,
        shard=parse_shard(shard, env) if shard is not None else None,
        with_parts=with_parts,
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
    epilog=epilog(
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
@setup()
@run_options
def sync(
    full: bool,
    overlap: float,
    page_size: int,
    with_parts: frozenset[str],
    run: app.RunOptions,
    env: Env,
    as_json: bool,
) -> int:
    """Discover new sessions from the list, re-fetch unfinished and failed ones (for cron).

    When another sync holds the lock, does nothing and exits 0 (`"run_skipped": true` with
    --json). A dry run takes no lock and writes nothing.
    """
    how = app.SyncOptions(
        full=full, overlap=timedelta(hours=overlap), page_size=page_size, with_parts=with_parts
    )
    return emit(app.sync(how, run), as_json)


@main.command(
    epilog=epilog(
        "roomsync status --max-age 30m   # exit 1 when no sync succeeded in 30 minutes",
        "  0    read (with --max-age: a sync succeeded within it)\n"
        "  1    with --max-age: no sync succeeded within it, or ever, or the clock disagrees;\n"
        "       with a budget: this UTC month's spend is over it\n"
        "  2    usage error\n"
        "  3    configuration or database problem (missing file, not migrated)",
    )
)
@click.option(
    "--max-age",
    metavar="DURATION",
    callback=parsed(parse_duration),
    help="Health check: exit 1 unless a sync succeeded within DURATION (90s, 15m, 2h, 1d).",
)
@click.option(
    "--budget",
    metavar="DOLLARS",
    callback=parsed(parse_budget),
    help="Exit 1 when this UTC month's spend is over DOLLARS [env ROOMSYNC_MONTHLY_BUDGET].",
)
@json_option
@database_option
@setup(NO_HTTP_VERBOSE)
def status(
    max_age: timedelta | None,
    budget: float | None,
    as_json: bool,
    database_url: str | None,
    env: Env,
) -> int:
    """What the database holds and how the last runs went; reads, never writes.

    Sessions stored, live and waiting for their final cost, failing ids, the newest session,
    the last run of each command, the last successful sync, the schema revision. A missing
    SQLite file is an error, never created.
    """
    url, chosen = url_of(database_url, env), monthly_budget(budget, env)
    return emit(app.status(url, max_age, chosen), as_json)


@main.command(
    epilog=epilog(
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
@with_option(SYNC_PARTS, "Also check the token can read these")
@json_option
@api_settings_options
@setup()
def check(
    as_json: bool, timeout: float, with_parts: frozenset[str], env: Env, **flags: str | None
) -> int:
    """Check the settings, the database and the credentials; write nothing.

    Names every missing setting at once; opens the database read-only (a missing SQLite file
    is reported, not created) and compares its revision with the newest migration; asks the
    API for one session of the list to see the credentials accepted, and one item of each
    endpoint named by --with. No ledger row is written.
    """
    return emit(app.check(flags, env, timeout, with_parts), as_json)


@main.group()
def db() -> None:
    """Create, upgrade or inspect the database schema (Alembic migrations)."""


@db.command("upgrade", epilog=epilog("roomsync db upgrade", EXIT_SIMPLE))
@click.argument("revision", default="head")
@json_option
@database_option
@setup(NO_HTTP_VERBOSE)
def db_upgrade(revision: str, as_json: bool, database_url: str | None, env: Env) -> int:
    """Upgrade the schema to REVISION (default: head)."""
    return emit(app.db_upgrade(url_of(database_url, env), revision), as_json)


@db.command("downgrade", epilog=epilog("roomsync db downgrade base", EXIT_SIMPLE))
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
    return emit(app.db_downgrade(url_of(database_url, env), revision), as_json)


@db.command("current", epilog=epilog("roomsync db current", EXIT_SIMPLE))
@json_option
@database_option
@setup(NO_HTTP_VERBOSE)
def db_current(as_json: bool, database_url: str | None, env: Env) -> int:
    """Print the schema revision the database is at (`base` when empty)."""
    return emit(app.db_current(url_of(database_url, env)), as_json)


@main.command(
    epilog=epilog(
        "roomsync demo --serve --port 8080",
        EXIT_SIMPLE + "\n  (--serve: 0 after Ctrl-C or SIGTERM)",
    )
)
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
@click.option(
    "--serve",
    is_flag=True,
    help="Then keep the stand-in API up on loopback and print the settings that point every "
    "other command at it, until Ctrl-C or SIGTERM.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="With --serve: the loopback port (0: any free one).",
)
@json_option
@setup("Also log each HTTP request to the stand-in.", env_file=False)
def demo(sessions: int, database_url: str, serve: bool, port: int, as_json: bool, env: Env) -> int:
    """Run the whole job against a local stand-in API: migrate, backfill, summarise.

    With --serve the stand-in stays up afterwards, so that `check`, `sync`, `fetch`, `status`
    and `report` can be tried by hand against it (it prints the four variables to export).
    """
    if not serve:
        if port:
            raise click.UsageError("--port goes with --serve")
        return emit(app.demo(sessions, database_url, demo_command()), as_json)
    return serve_demo(sessions, database_url, port, as_json)


@main.command(
    epilog=epilog("roomsync report --by week --since 2026-10-01 --format csv", EXIT_SIMPLE)
)
@click.option(
    "--since",
    metavar="DATE",
    callback=parsed(report_bound),
    help="From this moment, inclusive: YYYY-MM-DD or an ISO datetime (UTC unless an offset).",
)
@click.option(
    "--until",
    metavar="DATE",
    callback=parsed(report_bound),
    help="Up to this moment, exclusive.",
)
@click.option(
    "--by",
    type=click.Choice(GROUPINGS),
    default="day",
    show_default=True,
    help="Group by UTC day, ISO week (labelled by its Monday), month, room, session or status.",
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
    """Sessions, minutes, participant-minutes, cost by source and peaks per day, week, month,
    room, session or status.

    A session counts in the period of its start time, or of its creation time when it never
    started. Sums cover the known values: a group with no known duration or cost shows none.
    """
    how = app.ReportOptions(**options)
    budget = monthly_budget(None, env) if how.fmt == "html" else None
    return emit(app.report(url_of(database_url, env), how, budget), False)


@main.command(
    epilog=epilog(
        "roomsync deploy systemd --output /opt/roomsync/cron",
        "  0    printed or written\n  2    usage error, or a file is there already (--force)",
    )
)
@click.argument("kind", type=click.Choice(["systemd", "cron", "kubernetes"]), metavar="KIND")
@click.option(
    "-o",
    "--output",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Write the files into DIR (made if missing) instead of printing them.",
)
@click.option("--force", is_flag=True, help="Replace files already in DIR.")
@setup(NO_HTTP_VERBOSE, env_file=False)
def deploy(kind: str, output: str | None, force: bool, env: Env) -> int:
    """Print (or write into DIR) the deployment files for systemd, cron or Kubernetes.

    They ship inside roomsync, so a pipx or container install has them. The files name this
    roomsync's executable, and, written with --output, DIR as the cron wrapper's place
    (/opt/roomsync/cron when printed).
    """
    return print_deploy_files(kind, output, force)
