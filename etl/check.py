"""`roomsync check`: is everything in place for a run? Writes nothing, not even a ledger row.

Three checks, each reported on its own: the settings (every missing or malformed one named at
once), the database (reachable, opened read-only, at the newest migration) and the credentials
(one list request for a single session). A check whose inputs are broken is skipped.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import (
    ENV_SPACE,
    Settings,
    api_values,
    database_url,
    load_settings,
    mask_url,
    missing_settings,
    not_set,
    resolve_base_url,
)
from .errors import ConfigError, RoomsyncError

CHECK_RETRIES = 2  # the credential check: one retry for a passing hiccup, not a long wait


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: skipped, its inputs are broken
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def settings_problems(
    overrides: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[list[str], str | None]:
    """(every problem with the settings, the API's base URL when the space is usable)."""
    missing = missing_settings(overrides, env)
    problems = [not_set(missing)] if missing else []
    space = api_values(overrides, env)[ENV_SPACE]
    base_url = None
    if space:
        try:
            base_url = resolve_base_url(str(space))
        except ConfigError as exc:
            problems.append(str(exc))
    from .storage import is_valid_url

    if not is_valid_url(database_url(overrides, env)):
        problems.append("DATABASE_URL is not a valid SQLAlchemy URL")
    return problems, base_url


def check_database(url: str) -> Check:
    """Reachable (opened read-only: a missing SQLite file is not created) and at head."""
    from .storage import Store, head_revision

    try:
        with Store.open(url, readonly=True, at_head=False) as store:
            revision = store.revision()
    except RoomsyncError as exc:
        return Check("database", False, str(exc))
    head = head_revision()
    where = f"{mask_url(url)} at {revision or 'base'}"
    if revision != head:
        return Check("database", False, f"{where}, not at {head}: run `roomsync db upgrade`")
    return Check("database", True, f"{where} (head)")


def check_credentials(settings: Settings) -> Check:
    """One small list request (`page_size=1`): a 401/403 means the credentials are refused."""
    from .signalwire import SESSION_PATH, SignalWireClient

    async def ask() -> None:
        async with SignalWireClient(settings) as client:
            await client.get_json(SESSION_PATH, {"page_size": 1})

    try:
        asyncio.run(ask())
    except RoomsyncError as exc:
        return Check("credentials", False, str(exc))
    return Check("credentials", True, f"accepted by {settings.base_url}")


def run_checks(
    overrides: Mapping[str, Any], env: Mapping[str, str] | None = None, timeout: float = 10.0
) -> list[Check]:
    """Every check, in order; none of them writes anything."""
    env = os.environ if env is None else env
    problems, base_url = settings_problems(overrides, env)
    checks = [Check("settings", not problems, "; ".join(problems) or "complete")]
    url = database_url(overrides, env)
    if any("DATABASE_URL" in p for p in problems):
        checks.append(Check("database", None, "DATABASE_URL is not usable"))
    else:
        checks.append(check_database(url))
    if base_url is None or not all(api_values(overrides, env).values()):
        checks.append(Check("credentials", None, "the API settings are incomplete"))
    else:
        quick = {"timeout": timeout, "retries": CHECK_RETRIES, "concurrency": 1}
        checks.append(check_credentials(load_settings({**overrides, **quick}, env)))
    return checks
