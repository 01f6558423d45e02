"""Settings and defaults: the one place that reads the environment, and the one place that
defines each default and choice (the CLI shows them, the library uses them).

Environment first, command-line flags override. Secrets live only in `Settings`, whose repr hides
them; database URLs are shown through `mask_url`. Kept free of heavy imports: the CLI imports it
before it knows whether a command needs SQLAlchemy at all.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .errors import ConfigError
from .safe_text import visible

DEFAULT_DATABASE_URL = "sqlite:///room_sessions.db"
ENV_SPACE = "SIGNALWIRE_SPACE"
ENV_PROJECT = "SIGNALWIRE_PROJECT_ID"
ENV_TOKEN = "SIGNALWIRE_API_TOKEN"
ENV_DATABASE = "DATABASE_URL"

# bounds on what the API may send: one body after decompression, pages in one list walk
DEFAULT_MAX_BODY_MIB = 16  # a full list page of 1,000 sessions is about 1.5 MiB
MIB = 1 << 20
DEFAULT_MAX_PAGES = 10_000  # 10 million sessions at 1,000 a page

# How far ahead of this machine's clock an upstream timestamp may be and still be trusted
# (ordering rows, moving the sync's watermark); later ones came from a broken clock.
CLOCK_SKEW = timedelta(minutes=10)

# sync: how far before the last watermark an early stop may come; the API's largest list page.
# The overlap only has to cover sessions the list shows late (the vendor's own lag, clock skew
# between its hosts, a run that started while sessions were being created): minutes. An hour
# is ample for that and costs no request as long as an hour of sessions fits on the first page
# (fewer than 24,000 sessions a day); 24 hours re-listed a whole day every run.
DEFAULT_OVERLAP = timedelta(hours=1)
MAX_PAGE_SIZE = 1000

# The rest of the bill (issue 18). What `--with` may name, per command, and the defaults.
DETAILS = ("members", "recordings")
SYNC_PARTS = (*DETAILS, "charges", "rooms")
# A completed session's detail that is not final yet (a member without leave_time, a recording
# not completed) is fetched again by each sync until it is, but only for this long after the
# session ended: a vendor that never finishes a recording cannot cost a request a run forever.
DETAIL_SETTLE = timedelta(days=7)
# The logs walk starts after the last one's newest entry less the sync's --overlap, and reaches
# back to the oldest stored entry whose charge can still change (not completed), no further
# back than this: an entry stuck in progress cannot hold every walk for ever.
CHARGES_REACH = timedelta(days=7)


def parse_with(text: str, allowed: tuple[str, ...]) -> frozenset[str]:
    """`--with members,recordings`: the parts named (`none`: nothing but the sessions); an
    unknown name is a ValueError naming the choices."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if names == ["none"]:
        return frozenset()
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise ValueError(
            f"unknown part {', '.join(unknown) or repr(text)}: choose from "
            f"{', '.join(allowed)} (comma-separated) or none"
        )
    return frozenset(names)


# report: groupings and output formats.
GROUPINGS = ("day", "week", "month", "room", "status")
TIME_GROUPINGS = ("day", "week", "month")
TEXT_FORMATS = ("table", "csv", "json")


@dataclass(frozen=True)
class Settings:
    """Everything one run needs. `api_token` is excluded from repr so it never reaches a log."""

    base_url: str
    project_id: str
    api_token: str = field(repr=False)
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    timeout: float = 30.0
    retries: int = 5
    concurrency: int = 8
    backoff: float = 0.5
    max_retry_after: float = 60.0
    rate_limit: float | None = None
    batch_size: int = 500
    max_body: int = DEFAULT_MAX_BODY_MIB * MIB  # bytes, after decompression
    max_pages: int = DEFAULT_MAX_PAGES

    def __repr__(self) -> str:  # dataclass repr would still show database_url's password
        return (
            f"Settings(base_url={self.base_url!r}, project_id={self.project_id!r}, "
            f"api_token='***', database_url={mask_url(self.database_url)!r}, "
            f"timeout={self.timeout}, retries={self.retries}, concurrency={self.concurrency})"
        )


def _secret_key(name: str) -> bool:
    return "password" in name.lower()


def url_secrets(url: Any) -> list[str]:
    """Every secret a database URL holds: its password and `?password=`-like parameters."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return []
    secrets = [str(parsed.password)] if parsed.password else []
    for key, value in parsed.query.items():
        if _secret_key(key):
            secrets.extend([value] if isinstance(value, str) else list(value))
    return [secret for secret in secrets if secret]


def mask_url(url: Any) -> str:
    """Render a database URL (text or SQLAlchemy URL) with every secret replaced by ***."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return "<unparseable database URL>"
    query = {key: "***" if _secret_key(key) else value for key, value in parsed.query.items()}
    rendered = parsed.set(query=query).render_as_string(hide_password=True)
    return rendered.replace("%2A%2A%2A", "***")  # the query's *** comes back URL-encoded


def is_loopback_host(host: str) -> bool:
    """localhost, or any loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# A DNS name: dot-separated labels of ASCII letters, digits and inner hyphens.
_HOSTNAME = re.compile(
    r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?", re.ASCII
)


def _refuse_userinfo(space: str) -> None:
    """Credentials come from their own variables; a `user:password@` in the space would be
    printed, logged and sent as given. Refused without echoing the value."""
    if "@" in space.split("?", 1)[0].split("#", 1)[0]:
        raise ConfigError(
            f"{ENV_SPACE} must not hold credentials (user:password@): put the Project ID in "
            f"{ENV_PROJECT} and the token in {ENV_TOKEN}"
        )


def _valid_host(host: str) -> bool:
    """A DNS name or an IP address (urlsplit gives IPv6 without brackets)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.fullmatch(host))
    return True


def _check_port(parts: SplitResult) -> None:
    try:
        port = parts.port  # urlsplit checks the port only when asked for it
    except ValueError:
        port = 0
    if port == 0:
        raise ConfigError(
            f"{ENV_SPACE} has an invalid port: {visible(parts.netloc)!r} (1 to 65535)"
        )


def resolve_base_url(space: str) -> str:
    """Turn a space name, a host or a full URL into the API's base URL.

    `example` -> https://example.signalwire.com; `example.signalwire.com` -> https://...;
    a URL with a scheme is used as is. Plain http is refused except to loopback, because Basic
    auth would send the token in clear.
    """
    space = space.strip().rstrip("/")
    if not space:
        raise ConfigError(f"{ENV_SPACE} is empty: set it to your space name, e.g. 'example'")
    _refuse_userinfo(space)
    if "://" not in space:
        host = space if "." in space else f"{space}.signalwire.com"
        if not _HOSTNAME.fullmatch(host):
            raise ConfigError(f"{ENV_SPACE} is not a space name, host or URL: {visible(space)!r}")
        return f"https://{host}"
    try:
        parts = urlsplit(space)
    except ValueError:  # "Invalid IPv6 URL": a bracket left open
        raise ConfigError(f"{ENV_SPACE} is not a valid URL: {visible(space)!r}") from None
    hostname = parts.hostname
    if parts.scheme not in ("http", "https") or hostname is None or not _valid_host(hostname):
        raise ConfigError(
            f"{ENV_SPACE} must be an http(s) URL, a host or a space name: {visible(space)!r}"
        )
    _check_port(parts)
    if parts.scheme == "http" and not is_loopback_host(hostname):
        raise ConfigError(
            f"{ENV_SPACE} uses plain http to {hostname}; the API token would travel in "
            "clear: use https"
        )
    return space


def _required(env: Mapping[str, str], overrides: Mapping[str, Any], key: str, name: str) -> str:
    value = overrides.get(key) or env.get(name)
    if not value:
        raise ConfigError(f"{name} is not set")
    return str(value)


def database_url(
    overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> str:
    """The database URL: --database-url, else DATABASE_URL, else a SQLite file in the cwd."""
    env = os.environ if env is None else env
    overrides = overrides or {}
    url = str(overrides.get("database_url") or env.get(ENV_DATABASE) or DEFAULT_DATABASE_URL)
    return normalize_database_url(url)


def normalize_database_url(url: str) -> str:
    """`postgres://` (and `postgres+driver://`), as hosting platforms inject DATABASE_URL,
    spelled the way SQLAlchemy names the dialect: `postgresql://`. Anything else is unchanged."""
    scheme, sep, rest = url.partition("://")
    dialect, plus, driver = scheme.partition("+")
    if sep and dialect.lower() == "postgres":
        return f"postgresql{plus}{driver}{sep}{rest}"
    return url


def load_settings(
    overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Build settings for a run that calls the API. Missing settings raise ConfigError."""
    env = os.environ if env is None else env
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    base_url = resolve_base_url(_required(env, overrides, "space", ENV_SPACE))
    project_id = _required(env, overrides, "project_id", ENV_PROJECT)
    token = _required(env, overrides, "api_token", ENV_TOKEN)
    tunables = {
        k: overrides[k]
        for k in (
            "timeout",
            "retries",
            "concurrency",
            "backoff",
            "max_retry_after",
            "rate_limit",
            "batch_size",
            "max_body",
            "max_pages",
        )
        if k in overrides
    }
    settings = Settings(
        base_url=base_url,
        project_id=project_id,
        api_token=token,
        database_url=database_url(overrides, env),
        **tunables,
    )
    return settings
