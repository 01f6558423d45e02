"""Click building blocks for safe input and one-line errors.

- `FiniteFloatRange`: a float option that refuses NaN and infinity before its range check
  (NaN compares false with every bound, so click's FloatRange lets it through);
  `option_type` builds an option's type from its bound in etl.config.
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

from .config import BOUNDS
from .safe_text import visible


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses NaN and +-infinity ('nan', 'inf', '1e999')."""

    name = "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def option_type(name: str) -> click.IntRange | FiniteFloatRange:
    """The click type of a bounded option: its bound is etl.config's (BOUNDS[name])."""
    bound = BOUNDS[name]
    if bound.whole:
        low = None if bound.low is None else int(bound.low)
        high = None if bound.high is None else int(bound.high)
        return click.IntRange(low, high, min_open=bound.low_open)
    return FiniteFloatRange(min=bound.low, max=bound.high, min_open=bound.low_open)


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
