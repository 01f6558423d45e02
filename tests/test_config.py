"""Settings: the base URL a space resolves to, required variables, secrets kept out of repr."""

from __future__ import annotations

import pytest

from etl.config import load_settings, mask_url, resolve_base_url
from etl.errors import ConfigError


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
