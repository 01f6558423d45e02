"""Unit tests of etl/cli_types.py: bounded options that refuse NaN and infinity, usage errors as
one line and exit 2, and the confirmation a destructive command asks for."""

from __future__ import annotations

import sys

import click
import pytest
from click.testing import CliRunner

from etl.cli_types import FiniteFloatRange, OneLineGroup, confirm_or_refuse, option_type
from etl.config import BOUNDS


@click.group(cls=OneLineGroup)
def demo() -> None:
    """A group like roomsync's."""


@demo.command()
@click.option("--timeout", type=option_type("timeout"), default=1.0)
@click.option("--concurrency", type=option_type("concurrency"), default=1)
def go(timeout: float, concurrency: int) -> None:
    click.echo(f"{timeout!r} {concurrency!r}")


@demo.command()
def fail() -> None:
    raise click.ClickException("it broke\non two lines")


@demo.command()
def abort() -> None:
    raise click.Abort()


@demo.command()
@click.option("--yes", is_flag=True)
def drop(yes: bool) -> None:
    confirm_or_refuse(yes, "Drop everything?", "drop needs --yes when not on a terminal")
    click.echo("dropped")


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(demo, list(args), prog_name="roomsync", input=stdin)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999", "-Infinity"])
def test_a_float_option_refuses_non_finite_numbers_in_one_line(value: str) -> None:
    code, out, err = run("go", "--timeout", value)
    assert (code, out) == (2, "")
    assert err.startswith("roomsync: error: ") and err.count("\n") == 1
    assert "not a finite number" in err and "--timeout" in err
    assert "(see 'roomsync go -h')" in err and "Usage:" not in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["go", "--timeout", "0"], "--timeout"),  # the low bound is open
        (["go", "--timeout", "x"], "--timeout"),
        (["go", "--concurrency", "0"], "--concurrency"),
        (["go", "--concurrency", "1.5"], "--concurrency"),
        (["go", "--nope"], "--nope"),
        (["nope"], "nope"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], words: str) -> None:
    code, out, err = run(*args)
    assert (code, out) == (2, "")
    assert err.startswith("roomsync: error: ") and err.count("\n") == 1 and words in err


def test_values_within_the_bounds_are_passed_on_as_numbers() -> None:
    code, out, _ = run("go", "--timeout", "0.5", "--concurrency", "3")
    assert (code, out) == (0, "0.5 3\n")


def test_option_types_follow_the_bounds_in_config() -> None:
    concurrency = option_type("concurrency")
    assert isinstance(concurrency, click.IntRange)
    assert (concurrency.min, concurrency.max) == (
        BOUNDS["concurrency"].low,
        BOUNDS["concurrency"].high,
    )
    timeout = option_type("timeout")
    assert isinstance(timeout, FiniteFloatRange) and timeout.min_open


def test_finite_float_range_still_checks_its_range() -> None:
    kind = FiniteFloatRange(min=1.0, max=2.0)
    assert kind.convert("1.5", None, None) == 1.5
    with pytest.raises(click.BadParameter):
        kind.convert("2.5", None, None)
    with pytest.raises(click.BadParameter, match="not a finite number"):
        kind.convert(float("nan"), None, None)


def test_a_click_exception_is_one_line_with_its_escapes_visible() -> None:
    code, _, err = run("fail")
    assert (code, err) == (1, "roomsync: error: it broke\\x0aon two lines\n")


def test_an_abort_is_one_line_exit_1() -> None:
    assert run("abort") == (1, "", "roomsync: aborted\n")


def test_no_arguments_prints_the_help() -> None:
    code, _, err = run()  # click prints it on stderr for a group called without a command
    assert code == 2 and err.startswith("Usage: roomsync") and "Commands:" in err


def test_a_destructive_command_off_a_terminal_refuses_without_yes() -> None:
    code, out, err = run("drop", stdin="y\n")  # an answer on a pipe is not a yes
    assert (code, out) == (2, "")
    assert err.startswith("roomsync: error: drop needs --yes when not on a terminal")
    assert run("drop", "--yes")[:2] == (0, "dropped\n")


class _Terminal:
    """A stream that says it is a terminal, otherwise the stream it wraps."""

    def __init__(self, stream: object) -> None:
        self._stream = stream

    def isatty(self) -> bool:
        return True

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


class _TerminalSys:
    """etl.cli_types' view of `sys`: stdin and stderr are terminals (CliRunner's streams)."""

    def __getattr__(self, name: str) -> object:
        value = getattr(sys, name)
        return _Terminal(value) if name in ("stdin", "stderr") else value


@pytest.mark.parametrize(
    ("answer", "code", "out"), [("y", 0, "dropped\n"), ("n", 2, ""), ("", 2, "")]
)
def test_on_a_terminal_it_asks_and_goes_on_only_on_yes(
    answer: str, code: int, out: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(tests/scenarios/test_security_input.py does this on a real pty, through the CLI.)"""
    monkeypatch.setattr("etl.cli_types.sys", _TerminalSys())
    got_code, got_out, err = run("drop", stdin=answer + "\n")
    assert (got_code, got_out) == (code, out)
    assert err.startswith("Drop everything? [y/N]: ")
    if code:
        assert "\nroomsync: error: not confirmed; nothing was changed" in err
