"""The click options several commands share, each defined once as a decorator, and the one
place where errors become messages and exit codes (`handle_errors`, applied by `setup`).

- `setup(...)`: --env-file, --log-format, -v, -q on every command; the environment read (config)
  and logging configured before the command runs; the command gets `env`.
- `run_options`: the options of fetch, backfill and sync, turned into one `app.RunOptions`.
- `database_option`, `json_option`, `api_settings_options`.
- `emit`: a result on stdout (a human summary, or one JSON object with --json); its exit code.
- the --help epilogs (an example and the exit codes), --version, and the click callbacks that
  parse option values (`parsed`).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn, ParamSpec, TypeVar

import click

from . import app, logs
from .cli_types import option_type
from .config import (
    DEFAULT_MAX_BODY_MIB,
    LOG_FORMATS,
    MIB,
    MIN_RATE_LIMIT,
    Settings,
    database_url,
    environment,
    load_settings,
)
from .config import log_format as resolve_log_format
from .errors import RoomsyncError
from .safe_text import visible

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
Env = dict[str, str]
log = logging.getLogger("etl.cli")


def _fail(message: str, exit_code: int, as_json: bool) -> NoReturn:
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


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Map the project's exceptions to a one-line message and exit code (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
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

    return wrapper


def check_backfill_usage(
    file: str | None, retry_failed: bool, via_list: bool, shard: str | None
) -> None:
    """backfill's flags that go together, or do not (click cannot say it by itself)."""
    if file is None and not retry_failed:
        raise click.UsageError("give FILE, or --retry-failed, or both")
    if via_list and (file is None or retry_failed or shard is not None):
        raise click.UsageError(
            "--via-list needs FILE and goes with neither --retry-failed nor --shard"
        )


def demo_command() -> str:
    """How the demo's closing lines spell roomsync where the user stands (etl.demo.how_to_run)."""
    import shutil

    from .demo import how_to_run

    return how_to_run(sys.argv[0], shutil.which("roomsync"), sys.executable)


def serve_demo(sessions: int, url: str, port: int, as_json: bool) -> int:
    """`demo --serve`: run the demo against a stand-in kept up on loopback, print the result
    (with the settings that point at it), and wait for Ctrl-C or SIGTERM; exit 0."""
    from .demo import StopSignals, serving

    with serving(sessions, port) as api:
        result = app.demo(sessions, url, demo_command(), api)
        with StopSignals() as stop:
            emit(result, as_json)
            sys.stdout.flush()
            stopped_by = stop.wait()
    log.info("stand-in API stopped (%s)", stopped_by)
    return 0


def print_deploy_files(kind: str, output: str | None, force: bool) -> int:
    """`deploy`: the files printed, or written into `output` (their paths printed); exit 0."""
    from pathlib import Path

    from .deploy import DEFAULT_CRON_DIR, deploy_files, render, write

    if output is None:
        click.echo(render(deploy_files(kind, DEFAULT_CRON_DIR)), nl=False)
        return 0
    directory = Path(output).absolute()
    for path in write(deploy_files(kind, str(directory)), directory, force):
        click.echo(str(path))
    return 0


def emit(result: app.Result, as_json: bool) -> int:
    """Print a command's result on stdout; return its exit code."""
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        click.echo(result.to_text(), nl=False)
    return result.exit_code


HTTP_VERBOSE = "Also log each HTTP request."
#: -v of the commands that make no HTTP request (status, report, db): there is nothing more to log
NO_HTTP_VERBOSE = "Accepted by every command; this one makes no HTTP request, so logs no more."


def setup(verbose: str = HTTP_VERBOSE, env_file: bool = True) -> Callable[[F], F]:
    """--env-file, --log-format, -v and -q; the errors of everything below mapped to exit
    codes. The command gets `env`: the environment its settings are read from."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            fmt, verbose_on, quiet = (kwargs.pop(k) for k in ("log_format", "verbose", "quiet"))
            if verbose_on and quiet:
                raise click.UsageError("-v and -q exclude each other")
            env, shadowed = environment(kwargs.pop("env_file", None))
            verbosity = logs.VERBOSE if verbose_on else logs.QUIET if quiet else logs.NORMAL
            logs.configure(resolve_log_format(fmt, env), verbosity)
            if shadowed:
                log.info("set in the environment, so not read from --env-file: %s", shadowed)
            return func(*args, env=env, **kwargs)

        options = [
            click.option(
                "--log-format",
                type=click.Choice(LOG_FORMATS),
                help="text (the default): timestamp, level, message; json: one object per line "
                "[env ROOMSYNC_LOG_FORMAT].",
            ),
            click.option("-v", "--verbose", is_flag=True, help=verbose),
            click.option(
                "-q", "--quiet", is_flag=True, help="Log errors only (results still print)."
            ),
        ]
        if env_file:
            options.insert(0, ENV_FILE_OPTION)
        for option in reversed(options):
            wrapper = option(wrapper)
        return handle_errors(wrapper)  # type: ignore[return-value]

    return decorate


ENV_FILE_OPTION = click.option(
    "--env-file",
    metavar="PATH",
    help="Read KEY=value settings from PATH; variables set in the environment win over it.",
)


database_option = click.option(
    "--database-url",
    metavar="URL",
    help="SQLAlchemy URL [env DATABASE_URL; default sqlite:///room_sessions.db].",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON object on stdout."
)
api_options = [
    click.option("--space", help="Space name, host or base URL [env SIGNALWIRE_SPACE]."),
    click.option("--project-id", help="Project ID [env SIGNALWIRE_PROJECT_ID]."),
    database_option,
]


def _apply(func: F, options: Sequence[Callable[[Any], Any]]) -> F:
    for option in reversed(options):
        func = option(func)
    return func


def api_settings_options(func: F) -> F:
    """--space, --project-id and --database-url."""
    return _apply(func, api_options)


#: run_options' flags that are settings (etl.config.load_settings), by their parameter names
RUN_FLAGS = (
    "space",
    "project_id",
    "database_url",
    "concurrency",
    "timeout",
    "retries",
    "backoff",
    "rate_limit",
    "batch_size",
    "max_body",
    "max_pages",
)


def run_options(func: F) -> F:
    """Options shared by fetch, backfill and sync; the command gets them as `run`
    (app.RunOptions: the settings, the dry run, the metrics file, the progress display)."""

    @functools.wraps(func)
    def wrapper(*args: Any, env: Env, **kwargs: Any) -> Any:
        flags = {k: kwargs.pop(k) for k in RUN_FLAGS}
        flags["max_body"] *= MIB
        every = kwargs.pop("progress_every")
        run = app.RunOptions(
            settings=load_settings(flags, env),
            dry_run=kwargs.pop("dry_run"),
            metrics_file=kwargs.pop("metrics_file"),
            progress=_progress(every, bool(kwargs.get("as_json"))),
            handle_signals=True,
        )
        return func(*args, run=run, env=env, **kwargs)

    return _apply(wrapper, [*api_options, *_RUN_OPTIONS, json_option, *_RUN_TAIL])  # type: ignore[return-value]


_RUN_OPTIONS = [
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
]
_RUN_TAIL = [
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


def _progress(every: float, as_json: bool) -> app.ClosingProgress | None:
    """A bar on a terminal; elsewhere a progress log line every `every` seconds."""
    from .progress import ProgressLog, TerminalProgress

    if sys.stderr.isatty():
        return None if as_json or logs.quiet() else TerminalProgress(sys.stderr)
    return ProgressLog(every) if every > 0 else None


# --------------------------------------------------------------------------- help, callbacks


def epilog(example: str, codes: str) -> str:
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


def print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """--version: the version and the schema revision it expects (read without Alembic)."""
    if not value or ctx.resilient_parsing:
        return
    from .version import version_text

    click.echo(version_text())
    ctx.exit()


def parsed(
    parse: Callable[[str], T],
) -> Callable[[click.Context, click.Parameter, str | None], T | None]:
    """A click callback: the option's text through `parse`; its ValueError is the option's
    usage error."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> T | None:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    return callback


def with_option(allowed: tuple[str, ...], what: str) -> Callable[[F], F]:
    """--with: comma-separated parts of the bill, or `none` (etl.config.parse_with)."""
    from .config import parse_with

    return click.option(
        "--with",
        "with_parts",
        default=",".join(allowed),
        show_default=True,
        metavar="PARTS",
        callback=parsed(lambda text: parse_with(text, allowed)),
        help=f"{what}: comma-separated, from {', '.join(allowed)}; `none` for sessions only.",
    )


def parse_duration(text: str) -> timedelta:
    from .status import parse_duration

    return parse_duration(text)


def url_of(flag: str | None, env: Env) -> str:
    return database_url({"database_url": flag}, env)


def report_bound(text: str) -> datetime:
    """--since/--until: a date or ISO datetime, UTC unless it says otherwise."""
    from .report import parse_bound

    return parse_bound(text)


version_option = click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=print_version,
    help="Show the version and the schema revision it expects, and exit.",
)
