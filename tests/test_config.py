"""Settings: the base URL a space resolves to, required variables, secrets kept out of repr,
and one set of value bounds that the CLI and the Python API both apply."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from etl import api
from etl.cli import main
from etl.config import (
    BOUNDS,
    Settings,
    check_bound,
    load_settings,
    mask_url,
    resolve_base_url,
)
from etl.errors import ConfigError, InputError

SID_FOR_BOUNDS = "51bcd77a-1751-4579-8e4d-c3a3578a60d8"


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ("example", "https://example.signalwire.com"),
        ("  example  ", "https://example.signalwire.com"),
        ("example.signalwire.com", "https://example.signalwire.com"),
        ("https://example.signalwire.com/", "https://example.signalwire.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:9", "http://localhost:9"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_resolve_base_url(space: str, expected: str) -> None:
    assert resolve_base_url(space) == expected


@pytest.mark.parametrize(
    ("space", "reason"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("http://example.signalwire.com", "use https"),
        ("http://10.0.0.5:8080", "use https"),
        ("ftp://example.com", r"must be an http\(s\) URL"),
        ("exa mple", "not a space name"),
    ],
)
def test_resolve_base_url_refuses(space: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        resolve_base_url(space)


def test_load_settings_names_a_missing_variable() -> None:
    env = {"SIGNALWIRE_SPACE": "example", "SIGNALWIRE_PROJECT_ID": "p"}
    with pytest.raises(ConfigError, match="SIGNALWIRE_API_TOKEN"):
        load_settings(env=env)


def test_flags_override_the_environment_and_secrets_stay_out_of_repr() -> None:
    env = {
        "SIGNALWIRE_SPACE": "example",
        "SIGNALWIRE_PROJECT_ID": "p",
        "SIGNALWIRE_API_TOKEN": "tok-secret-1",
        "DATABASE_URL": "postgresql://u:pw-secret-2@db/x",
    }
    settings = load_settings({"space": "other", "timeout": 3.0, "rate_limit": None}, env=env)
    assert settings.base_url == "https://other.signalwire.com"
    assert settings.timeout == 3.0 and settings.rate_limit is None
    assert "tok-secret-1" not in repr(settings) and "pw-secret-2" not in repr(settings)


def test_mask_url_hides_passwords_in_the_authority_and_the_query() -> None:
    masked = mask_url("postgresql://u:pw1@db/x?sslpassword=pw2&sslmode=require")
    assert "pw1" not in masked and "pw2" not in masked
    assert "sslmode=require" in masked


# --------------------------------------------------------------------------- one set of bounds

# (setting, CLI command and option, bad values as the command line spells them)
BAD_VALUES = [
    ("timeout", ["fetch", SID_FOR_BOUNDS, "--timeout"], ["0", "-1", "nan", "inf", "86401"]),
    ("retries", ["fetch", SID_FOR_BOUNDS, "--retries"], ["0", "-2"]),
    ("concurrency", ["fetch", SID_FOR_BOUNDS, "--concurrency"], ["0", "1001"]),
    ("backoff", ["fetch", SID_FOR_BOUNDS, "--backoff"], ["-0.5", "nan", "86401"]),
    ("rate_limit", ["fetch", SID_FOR_BOUNDS, "--rate-limit"], ["0", "0.0009", "nan"]),
    ("batch_size", ["fetch", SID_FOR_BOUNDS, "--batch-size"], ["0", "1001"]),
    ("max_pages", ["fetch", SID_FOR_BOUNDS, "--max-pages"], ["0"]),
    ("page_size", ["sync", "--page-size"], ["0", "1001"]),
    ("overlap_hours", ["sync", "--overlap"], ["-1", "inf", "876001"]),
]
CASES = [(name, command, value) for name, command, values in BAD_VALUES for value in values]


def _python_value(name: str, text: str) -> int | float:
    return int(text) if BOUNDS[name].whole else float(text)


@pytest.mark.parametrize(("name", "command", "value"), CASES)
def test_the_cli_and_the_python_api_refuse_the_same_values(
    name: str, command: list[str], value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "SIGNALWIRE_SPACE": "http://127.0.0.1:9",  # nothing listens: no request may be made
        "SIGNALWIRE_PROJECT_ID": "p",
        "SIGNALWIRE_API_TOKEN": "t",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
    }
    result = CliRunner().invoke(main, [*command, value], env=env, catch_exceptions=False)
    assert result.exit_code == 2 and result.stderr.startswith("roomsync: error: "), result.output
    assert len(result.stderr.splitlines()) == 1

    number = _python_value(name, value)
    for key, text in env.items():
        monkeypatch.setenv(key, text)
    with pytest.raises(InputError) as refused:
        if name in ("page_size", "overlap_hours"):
            api.sync(**{name: number})
        else:
            api.settings_from_env(**{name: number})
    assert refused.value.exit_code == 2 and name in str(refused.value)
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_the_values_at_each_bound_are_accepted_by_settings(name: str) -> None:
    bound = BOUNDS[name]
    for edge in (bound.low, bound.high):
        if edge is None or (edge == bound.low and bound.low_open):
            continue
        value = int(edge) if bound.whole else float(edge)
        check_bound(name, value)
        if name in {f.name for f in dataclasses.fields(Settings)}:
            Settings(base_url="https://x.example", project_id="p", api_token="t", **{name: value})


def test_whole_number_settings_refuse_fractions_and_booleans() -> None:
    for value in (1.5, 2.0, True):
        with pytest.raises(InputError, match="concurrency must be a whole number"):
            Settings(base_url="https://x.example", project_id="p", api_token="t", concurrency=value)
