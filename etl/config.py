"""Settings and defaults: the one place that reads the environment, and the one place that
defines each default and choice (the CLI shows them, the library uses them).

Environment first, command-line flags override. Secrets live only in `Settings`, whose repr hides
them; database URLs are shown through `mask_url`. Kept free of heavy imports: the CLI imports it
before it knows whether a command needs SQLAlchemy at all.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

from .errors import ConfigError, InputError
from .safe_text import visible

if TYPE_CHECKING:
    from sqlalchemy.engine import URL  # for typing only: SQL stays in etl.storage

DEFAULT_DATABASE_URL = "sqlite:///room_sessions.db"
ENV_SPACE = "SIGNALWIRE_SPACE"
ENV_PROJECT = "SIGNALWIRE_PROJECT_ID"
ENV_TOKEN = "SIGNALWIRE_API_TOKEN"
ENV_DATABASE = "DATABASE_URL"
ENV_SHARD_INDEX = "JOB_COMPLETION_INDEX"  # set by Kubernetes in each pod of an Indexed Job
ENV_BUDGET = "ROOMSYNC_MONTHLY_BUDGET"  # dollars a UTC calendar month may spend (status, metrics)
ENV_LOG_FORMAT = "ROOMSYNC_LOG_FORMAT"
LOG_FORMATS = ("text", "json")

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


# --------------------------------------------------------------------------- value bounds
# The limits that make a run possible at all. At fewer than 0.001 requests a second (one per
# 16 min 40 s) a sync from cron could not make its first few requests before the next one is
# due; more than 1,000 connections at once is no longer a client, it is a load test.
MIN_RATE_LIMIT = 0.001
MAX_CONCURRENCY = 1000
# Any wait longer than a day is a typo; a timedelta or a socket timeout may not hold it at all.
MAX_SECONDS = 86_400.0
# 100 years of overlap already reaches back before the API existed (timedelta holds ~2.7M).
MAX_OVERLAP_HOURS = 876_000.0
MAX_BATCH_SIZE = 1000
MAX_BODY_MIB = 1024


@dataclass(frozen=True)
class Bound:
    """The values one setting may take: a whole number, or a finite one, from `low` to `high`
    (`low` itself excluded when `low_open`; None: unbounded on that side). The command line
    builds its option types from these (etl.cli_types.option_type) and `Settings` checks them
    (`check_bound`), so the CLI and the Python API refuse the same values."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    whole: bool = False

    def admits(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.whole and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high

    def __str__(self) -> str:
        kind = "a whole number" if self.whole else "a finite number"
        low = "" if self.low is None else f"{'above' if self.low_open else 'at least'} {self.low!r}"
        high = "" if self.high is None else f"at most {self.high!r}"
        return " ".join(part for part in (kind, low, "and" if low and high else "", high) if part)


BOUNDS: dict[str, Bound] = {
    "timeout": Bound(0, MAX_SECONDS, low_open=True),
    "retries": Bound(1, whole=True),
    "concurrency": Bound(1, MAX_CONCURRENCY, whole=True),
    "backoff": Bound(0, MAX_SECONDS),
    "max_retry_after": Bound(0, MAX_SECONDS),
    "rate_limit": Bound(MIN_RATE_LIMIT),
    "batch_size": Bound(1, MAX_BATCH_SIZE, whole=True),
    "max_body": Bound(1, MAX_BODY_MIB * MIB, whole=True),  # bytes; the CLI takes MiB
    "max_body_mib": Bound(1, MAX_BODY_MIB, whole=True),
    "max_pages": Bound(1, whole=True),
    "page_size": Bound(1, MAX_PAGE_SIZE, whole=True),
    "overlap_hours": Bound(0, MAX_OVERLAP_HOURS),
}


def check_bound(name: str, value: object) -> None:
    """Refuse a value outside its bound (see BOUNDS) with InputError (exit 2), naming it."""
    bound = BOUNDS[name]
    if not bound.admits(value):
        raise InputError(f"{name} must be {bound}, not {visible(repr(value))}")


# report: groupings and output formats.
GROUPINGS = ("day", "week", "month", "room", "session", "status")
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

    def __post_init__(self) -> None:
        """Every tunable within its bound, checked once, whoever builds the settings."""
        for name in BOUNDS.keys() & {f.name for f in fields(self)}:
            value = getattr(self, name)
            if value is not None or name != "rate_limit":  # no rate limit: None
                check_bound(name, value)

    def __repr__(self) -> str:  # dataclass repr would still show database_url's password
        return (
            f"Settings(base_url={self.base_url!r}, project_id={self.project_id!r}, "
            f"api_token='***', database_url={mask_url(self.database_url)!r}, "
            f"timeout={self.timeout}, retries={self.retries}, concurrency={self.concurrency})"
        )


# File descriptors a run needs besides one socket per request in flight: the database pool
# (SQLAlchemy's default, 5 + 10 overflow), SQLite's journal, the id spool, log and metrics files,
# modules imported on first use, the event loop's own. Measured: a SQLite run needs about 12.
FD_MARGIN = 24


def fd_bounded_concurrency(concurrency: int) -> tuple[int, int]:
    """(the concurrency this process's open-file limit allows, that limit).

    Each request in flight holds a socket; past the limit every new one fails with EMFILE (and
    a module imported late fails with a traceback). The soft limit is read, never raised:
    raising it past 1024 would let descriptors exceed what select() can watch, in this process
    and, through the Python API, in the host's. Raises InputError (exit 2) when the limit
    leaves no room for even one request."""
    try:
        import resource
    except ImportError:  # not a Unix: no such limit to read
        return concurrency, -1
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return concurrency, -1
    room = soft - _open_descriptors() - FD_MARGIN
    if room < 1:
        raise InputError(
            f"the open-file limit (ulimit -n) is {soft}, too low for even one request: a run "
            f"needs about {soft - room} descriptors plus one per --concurrency; raise it"
        )
    return min(concurrency, room), soft


def _open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the one listdir itself opened
    except OSError:
        return 16  # no /proc: a fresh interpreter with its files and sockets open


def _secret_key(name: str) -> bool:
    return "password" in name.lower()


def url_secrets(url: str | URL) -> list[str]:
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


def mask_url(url: str | URL) -> str:
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


def shard_index(env: Mapping[str, str] | None = None) -> str | None:
    """The text of JOB_COMPLETION_INDEX (`--shard index/N`), None when it is not set."""
    env = os.environ if env is None else env
    return env.get(ENV_SHARD_INDEX)


def proxy_for(base_url: str) -> bool:
    """Whether a proxy setting in the environment (HTTPS_PROXY, ALL_PROXY...) names this scheme.

    httpx honours those only for its own default transport, so such runs keep it. A loopback
    space never goes through a proxy: it is on this machine, and it may be plain http, where
    a proxy would receive the Basic credentials in clear.
    """
    parts = urlsplit(base_url)
    if is_loopback_host(parts.hostname or ""):
        return False
    proxies = urllib.request.getproxies()
    return bool(proxies.get(parts.scheme) or proxies.get("all"))


# The API settings: the variable, and the key of the override (a flag) that takes its place.
API_VARIABLES = {ENV_SPACE: "space", ENV_PROJECT: "project_id", ENV_TOKEN: "api_token"}


def api_values(
    overrides: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
) -> dict[str, str | None]:
    """The API settings by variable name: the override, else the environment; None if unset."""
    env = os.environ if env is None else env
    overrides = overrides or {}
    return {
        name: str(overrides.get(key) or env.get(name) or "") or None
        for name, key in API_VARIABLES.items()
    }


def missing_settings(
    overrides: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
) -> list[str]:
    """Every API setting that is neither given (`overrides`) nor in `env`, by its variable
    name, in a fixed order: every command names them all at once."""
    return [name for name, value in api_values(overrides, env).items() if not value]


def not_set(names: list[str]) -> str:
    """`X is not set`, or `not set: X, Y` for several."""
    return f"{names[0]} is not set" if len(names) == 1 else f"not set: {', '.join(names)}"


def _required(values: Mapping[str, str | None], name: str) -> str:
    value = values[name]
    if not value:
        raise ConfigError(not_set([name]))
    return value


def database_url(
    overrides: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
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


def parse_budget(text: str) -> float:
    """A monthly budget in dollars: a finite number, not negative (`500`, `1250.50`)."""
    try:
        value = float(text.strip().removeprefix("$"))
    except ValueError:
        raise ValueError(
            f"{visible(text)!r} is not an amount of dollars like 500 or 1250.50"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{visible(text)!r} is not an amount of dollars like 500 or 1250.50")
    return value + 0.0  # -0 is 0 (else shown as "$-0.00")


def monthly_budget(
    override: float | None = None, env: Mapping[str, str] | None = None
) -> float | None:
    """The monthly budget: --budget, else ROOMSYNC_MONTHLY_BUDGET, else none. A bad value in
    the environment is a configuration error (exit 3), never silently no budget."""
    if override is not None:
        return override
    env = os.environ if env is None else env
    text = env.get(ENV_BUDGET, "").strip()
    if not text:
        return None
    try:
        return parse_budget(text)
    except ValueError as exc:
        raise ConfigError(f"{ENV_BUDGET}: {exc}") from None


def load_settings(
    overrides: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Build settings for a run that calls the API. Missing settings raise ConfigError."""
    env = os.environ if env is None else env
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    values = api_values(overrides, env)
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ConfigError(not_set(missing))
    base_url = resolve_base_url(_required(values, ENV_SPACE))
    project_id = _required(values, ENV_PROJECT)
    token = _required(values, ENV_TOKEN)
    # the values are checked against their bounds by Settings itself (__post_init__)
    tunables: dict[str, Any] = {
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


# --------------------------------------------------------------------------- --env-file

MAX_ENV_FILE_BYTES = 1 << 20  # a settings file, not a data file
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


def read_env_file(path: str) -> dict[str, str]:
    """`KEY=value` lines of an env file, as cron/roomsync-cron.sh (bash) and systemd's
    `EnvironmentFile=` both read them: blank lines and `#` comments skipped, an optional
    `export `, a value optionally in matching single or double quotes (taken literally, no
    `$` expansion). A value with unquoted spaces (or a trailing comment) is refused, since the
    readers disagree about it. A file that cannot be read is an InputError (exit 2), a line of
    another shape a ConfigError (exit 3) naming the line by its number, never by its text (it
    may hold a secret)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_ENV_FILE_BYTES + 1)
        text = data.decode("utf-8-sig")
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise InputError(f"cannot read env file {visible(path)}: {reason}") from None
    if len(data) > MAX_ENV_FILE_BYTES:
        raise InputError(f"env file {visible(path)} is larger than 1 MiB")
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        parsed = _env_line(line)
        if parsed is None:
            raise ConfigError(
                f"env file {visible(path)}, line {number}: not KEY=value "
                "(quote a value holding spaces; comments go on lines of their own)"
            )
        if parsed:
            values[parsed[0]] = parsed[1]
    return values


def _env_line(line: str) -> tuple[str, str] | tuple[()] | None:
    """(key, value); () for a blank or comment line; None for a line of another shape."""
    text = line.strip()
    if not text or text.startswith("#"):
        return ()
    if text.startswith("export "):
        text = text[len("export ") :].lstrip()
    key, sep, value = text.partition("=")
    if not sep or not _ENV_NAME.fullmatch(key):
        return None
    if len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
        inner = value[1:-1]
        return None if value[0] in inner else (key, inner)
    if any(c.isspace() for c in value) or value[:1] in ("'", '"'):
        return None
    return key, value


def environment(
    env_file: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """Where settings are read from, and the names `env_file` sets that the environment
    overrides: the process environment over the values of `env_file`.

    A variable set in the environment wins over the file, as with docker compose's `.env` and
    python-dotenv (the file gives defaults; `VAR=x roomsync ...` still overrides one); flags win
    over both. A variable set empty counts as unset, as everywhere in roomsync. Without a file,
    the environment alone."""
    env = os.environ if env is None else env
    if env_file is None:
        return dict(env), []
    from_file = read_env_file(env_file)
    merged = dict(env)
    merged.update({name: value for name, value in from_file.items() if not env.get(name)})
    return merged, sorted(name for name in from_file if env.get(name))


def log_format(flag: str | None, env: Mapping[str, str]) -> str:
    """--log-format, else ROOMSYNC_LOG_FORMAT, else text; another value is an InputError."""
    value = flag or env.get(ENV_LOG_FORMAT) or "text"
    if value not in LOG_FORMATS:
        raise InputError(
            f"{ENV_LOG_FORMAT} must be one of {', '.join(LOG_FORMATS)}, not {visible(value)!r}"
        )
    return value
