"""The Python API, for Airflow, Dagster, Prefect or any Python scheduler.

Each function does what the command of the same name does, for a caller that is already a
Python process: it opens the database engine, refuses a schema that is not at the newest
migration, runs, disposes of the engine and returns the run's summary as a plain dict (the
object `roomsync ... --json` prints, plus `exit_code`: the code the command would exit with).

    from etl import api

    api.upgrade()                                   # roomsync db upgrade
    summary = api.backfill(ids)                     # roomsync backfill
    summary = api.backfill_file("ids.txt", shard="0/4")
    result = api.sync()                             # roomsync sync

Settings default to the environment, as for the command line (SIGNALWIRE_SPACE,
SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN, DATABASE_URL); pass `settings_from_env(...)` with
overrides, or an `etl.config.Settings`, to choose. Failures that stop a run raise the exceptions
of etl.errors (ConfigError, AuthError, DatabaseError, InputError; each has `exit_code`). Ids
that fail after their retries do not raise: the summary counts them (`failed`, `failed_ids`),
unless `raise_on_failure=True`, which raises RunFailed carrying the summary. Unlike the command
line, no SIGINT/SIGTERM handler is installed: signals stay the host process's business.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from typing import Any

from .config import (
    DEFAULT_OVERLAP,
    DETAILS,
    MAX_PAGE_SIZE,
    SYNC_PARTS,
    Settings,
    check_bound,
    database_url,
    load_settings,
)
from .errors import RunFailed
from .shard import Shard, parse_shard

__all__ = [
    "backfill",
    "backfill_file",
    "settings_from_env",
    "sync",
    "upgrade",
]


def settings_from_env(**overrides: Any) -> Settings:
    """Settings from the environment, as the command line builds them; keyword overrides take
    the place of its flags (space, project_id, database_url, concurrency, timeout, retries,
    backoff, rate_limit, batch_size). Missing credentials raise ConfigError; a value outside
    its bound (etl.config.BOUNDS, the command line's too) raises InputError."""
    return load_settings(overrides)


def upgrade(url: str | None = None) -> str:
    """Migrate the database (`url`, else DATABASE_URL, else the default SQLite file) to the
    newest schema, as `roomsync db upgrade` does; returns the revision it is at."""
    from .storage import current_revision
    from .storage import upgrade as upgrade_schema

    target = database_url({"database_url": url})
    upgrade_schema(target)
    revision = current_revision(target)
    assert revision is not None
    return revision


def backfill(
    ids: Iterable[str],
    settings: Settings | None = None,
    *,
    shard: Shard | str | None = None,
    retry_failed: bool = False,
    skip_invalid: bool = False,
    refresh: bool = False,
    raise_on_failure: bool = False,
    with_parts: Collection[str] = DETAILS,
) -> dict[str, Any]:
    """Fetch and store these ids, as `roomsync backfill` does with a file of them.

    Every id is checked before the first request (InputError names the invalid ones unless
    `skip_invalid`); duplicates are fetched once. `shard` ("K/N", "index/N" or a Shard) keeps
    only that shard of the ids, `retry_failed` also retries the ids of the failure ledger.
    Ids stored final with their final cost are counted `skipped` unless `refresh`.
    `with_parts` (`--with`): the details of the completed sessions to fetch as well.
    The ids are held in memory: for a file of millions, use `backfill_file`.
    """
    from .idfiles import read_ids

    return _backfill(
        read_ids(ids, skip_invalid=skip_invalid, label="id"),
        settings,
        shard=shard,
        retry_failed=retry_failed,
        refresh=refresh,
        raise_on_failure=raise_on_failure,
        with_parts=with_parts,
    )


def backfill_file(
    path: str | os.PathLike[str],
    settings: Settings | None = None,
    *,
    shard: Shard | str | None = None,
    retry_failed: bool = False,
    skip_invalid: bool = False,
    refresh: bool = False,
    raise_on_failure: bool = False,
    with_parts: Collection[str] = DETAILS,
) -> dict[str, Any]:
    """`backfill` over an id file (one id per line, `#` comments), streamed as the command
    line streams it, so the file's size does not matter."""
    from .idfiles import IdSource

    source = IdSource.from_path(os.fspath(path), skip_invalid=skip_invalid)
    try:
        return _backfill(
            source,
            settings,
            shard=shard,
            retry_failed=retry_failed,
            refresh=refresh,
            raise_on_failure=raise_on_failure,
            with_parts=with_parts,
        )
    finally:
        source.close()


def sync(
    settings: Settings | None = None,
    *,
    full: bool = False,
    overlap_hours: float = DEFAULT_OVERLAP.total_seconds() / 3600,
    page_size: int = MAX_PAGE_SIZE,
    raise_on_failure: bool = False,
    with_parts: Collection[str] = SYNC_PARTS,
) -> dict[str, Any]:
    """One `roomsync sync`: the list first, then by id only what the list could not settle
    (etl/sync.py). When another sync holds the lock, returns `{"skipped": True, ...}` (exit
    code 0) without doing anything."""
    from datetime import timedelta

    from .storage import Store
    from .sync import run_sync

    check_bound("page_size", page_size)
    check_bound("overlap_hours", overlap_hours)
    settings = settings if settings is not None else settings_from_env()
    with Store.open(settings.database_url) as store:
        result = run_sync(
            settings,
            store,
            full=full,
            overlap=timedelta(hours=overlap_hours),
            page_size=page_size,
            with_parts=with_parts,
        )
    return _finish(result.to_dict(), result.exit_code, "sync", raise_on_failure)


def _backfill(
    ids: Iterable[str],
    settings: Settings | None,
    *,
    shard: Shard | str | None,
    retry_failed: bool,
    refresh: bool,
    raise_on_failure: bool,
    with_parts: Collection[str],
) -> dict[str, Any]:
    from .pipeline import run_ids
    from .storage import Store

    chosen = parse_shard(shard) if isinstance(shard, str) else shard
    settings = settings if settings is not None else settings_from_env()
    with Store.open(settings.database_url) as store:
        summary = run_ids(
            ids,
            settings,
            store,
            command="backfill",
            retry_failed=retry_failed,
            shard=chosen,
            skip_exact=not refresh,
            with_parts=with_parts,
        )
    return _finish(summary.to_dict(), summary.exit_code, "backfill", raise_on_failure)


def _finish(
    result: dict[str, Any], exit_code: int, command: str, raise_on_failure: bool
) -> dict[str, Any]:
    result = {**result, "exit_code": exit_code}
    if raise_on_failure and exit_code != 0:
        failed = result.get("failed", 0)
        errors = "; ".join(result.get("errors", []))
        raise RunFailed(
            f"{command}: {failed} id(s) failed" + (f"; {errors}" if errors else ""), result
        )
    return result
