"""`roomsync check`: is everything in place for a run? Writes nothing, not even a ledger row.

Three checks, each reported on its own: the settings (every missing or malformed one named at
once), the database (reachable, opened read-only, at the newest migration) and the credentials
(one list request for a single session), then one small request to each enabled endpoint of
the rest of the bill (`--with`: members, recordings, rooms, charges). A check whose inputs are
broken is skipped.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from .config import (
    ENV_SPACE,
    SYNC_PARTS,
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
from .outcomes import JsonObject

CHECK_RETRIES = 2  # the credential check: one retry for a passing hiccup, not a long wait


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: skipped, its inputs are broken
    detail: str

    def to_dict(self) -> JsonObject:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def settings_problems(
    overrides: Mapping[str, object], env: Mapping[str, str]
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


def check_credentials(settings: Settings, parts: Collection[str] = ()) -> list[Check]:
    """One small list request (`page_size=1`): a 401/403 means the credentials are refused.
    Then one small request to each enabled endpoint of the rest of the bill (`parts`), so a
    token that reads sessions but not logs, say, is found before a sync: the members and
    recordings of the session the list returned, the rooms list, the video logs."""
    from .signalwire import LOGS_PATH, ROOMS_PATH, SESSION_PATH, SignalWireClient

    async def ask() -> list[Check]:
        async with SignalWireClient(settings) as client:
            try:
                body = await client.get_json(SESSION_PATH, {"page_size": 1})
            except RoomsyncError as exc:
                return [Check("credentials", False, str(exc))]
            checks = [Check("credentials", True, f"accepted by {settings.base_url}")]
            data = body.get("data") if isinstance(body, dict) else None
            first = data[0] if isinstance(data, list) and data else None
            session_id = first.get("id") if isinstance(first, dict) else None
            paths = {
                "members": f"{SESSION_PATH}/{session_id}/members",
                "recordings": f"{SESSION_PATH}/{session_id}/recordings",
                "rooms": ROOMS_PATH,
                "charges": LOGS_PATH,
            }
            for part in SYNC_PARTS:
                if part not in parts:
                    continue
                if part in ("members", "recordings") and not isinstance(session_id, str):
                    checks.append(Check(part, None, "no session listed to ask about"))
                    continue
                try:
                    await client.get_json(paths[part], {"page_size": 1})
                except RoomsyncError as exc:
                    checks.append(Check(part, False, f"{paths[part].split('?')[0]}: {exc}"))
                else:
                    checks.append(Check(part, True, "readable"))
            return checks

    try:
        return asyncio.run(ask())
    except RoomsyncError as exc:
        return [Check("credentials", False, str(exc))]


def run_checks(
    overrides: Mapping[str, object],
    env: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    parts: Collection[str] = SYNC_PARTS,
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
        checks.extend(check_credentials(load_settings({**overrides, **quick}, env), parts))
    return checks
