"""Click building blocks for safe input and one-line errors.

- `FiniteFloatRange`: a float option that refuses NaN and infinity before its range check
  (NaN compares false with every bound, so click's FloatRange lets it through).
- `OneLineGroup`: usage errors print as one line, `roomsync: error: ...`, exit 2, like every
  other error of the CLI (click's default prints the usage block around them).
- `confirm_or_refuse`: a destructive command asks on a terminal, and refuses without `--yes`
  anywhere else.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import click

from .safe_text import visible

# The limits that make a run possible at all. At fewer than 0.001 requests a second (one per
# 16 min 40 s) a sync from cron could not make its first few requests before the next one is
# due; more than 1,000 connections at once is no longer a client, it is a load test.
MIN_RATE_LIMIT = 0.001
MAX_CONCURRENCY = 1000
# Any wait longer than a day is a typo; a timedelta or a socket timeout may not hold it at all.
MAX_SECONDS = 86_400.0
# 100 years of overlap already reaches back before the API existed (timedelta holds ~2.7M).
MAX_OVERLAP_HOURS = 876_000.0


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses NaN and +-infinity ('nan', 'inf', '1e999')."""

    name = "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


class OneLineGroup(click.Group):
    """A group whose usage errors are one line on stderr and exit 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("standalone_mode", True) is False:
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()  # `roomsync` alone: the help text, as click prints it
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"roomsync: error: {one_line(exc)}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("roomsync: aborted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def one_line(exc: click.ClickException) -> str:
    """The message of a click error on one line, with where to find help for a usage error."""
    message = visible(exc.format_message()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        message += f" (see '{ctx.command_path} -h')"
    return message


def confirm_or_refuse(yes: bool, question: str, refusal: str) -> None:
    """Go on with `--yes`; on a terminal ask `question`; otherwise refuse (a usage error).

    A cron job or a script never gets a prompt it cannot answer: it gets `refusal`, exit 2.
    """
    if yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise click.UsageError(refusal)
    if not click.confirm(question, default=False, err=True):
        raise click.UsageError("not confirmed; nothing was changed")
