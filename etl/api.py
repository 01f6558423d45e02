"""The Python API, for Airflow, Dagster, Prefect or any Python scheduler.

Each function does what the command of the same name does, through the same application layer
(etl.app), for a caller that is already a Python process: it opens the database, refuses a
schema that is not at the newest migration, runs, and returns the run's result as a plain dict:
the object `roomsync ... --json` prints (`exit_code`: the code the command would exit with;
`run_skipped`: a sync skipped because another held the lock; the counts per outcome).

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
from typing import TYPE_CHECKING, Any

from . import app
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

if TYPE_CHECKING:
    from .idfiles import IdSource

__all__ = [
    "backfill",
    "backfill_file",
    "settings_from_env",
    "sync",
    "upgrade",
]


def settings_from_env(**overrides: object) -> Settings:
    """Settings from the environment, as the command line builds them; keyword overrides take
    the place of its flags (space, project_id, database_url, concurrency, timeout, retries,
    backoff, rate_limit, batch_size). Missing credentials raise ConfigError (naming every
    missing one); a value outside its bound (etl.config.BOUNDS, the command line's too) raises
    InputError."""
    return load_settings(overrides)


def upgrade(url: str | None = None) -> str:
    """Migrate the database (`url`, else DATABASE_URL, else the default SQLite file) to the
    newest schema, as `roomsync db upgrade` does; returns the revision it is at."""
    revision = app.db_upgrade(database_url({"database_url": url})).revision
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
    allow_empty: bool = False,
    with_parts: Collection[str] = DETAILS,
) -> dict[str, Any]:
    """Fetch and store these ids, as `roomsync backfill` does with a file of them.

    Every id is checked before the first request (InputError names the invalid ones unless
    `skip_invalid`); duplicates are fetched once. `shard` ("K/N", "index/N" or a Shard) keeps
    only that shard of the ids, `retry_failed` also retries the ids of the failure ledger.
    Ids stored final with their final cost are counted `skipped` unless `refresh`.
    No id at all (an empty iterable, or only invalid ones skipped) raises InputError unless
    `allow_empty`, or `retry_failed` (`backfill([], retry_failed=True)` is the retry-only run,
    as `roomsync backfill --retry-failed` without FILE). `with_parts` (`--with`): the details of
    the completed sessions to fetch as well. The ids are held in memory: for a file
    of millions, use `backfill_file`.
    """
    from .idfiles import IdSource

    how = _backfill_options(shard, retry_failed, refresh, with_parts)
    source = IdSource(ids, skip_invalid=skip_invalid, label="id", skip_hint=SKIP_HINT)
    try:
        source.name = "the ids given"
        return _backfill(source, how, settings, allow_empty, raise_on_failure)
    finally:
        source.close()


def backfill_file(
    path: str | os.PathLike[str],
    settings: Settings | None = None,
    *,
    shard: Shard | str | None = None,
    retry_failed: bool = False,
    skip_invalid: bool = False,
    refresh: bool = False,
    raise_on_failure: bool = False,
    allow_empty: bool = False,
    with_parts: Collection[str] = DETAILS,
) -> dict[str, Any]:
    """`backfill` over an id file (one id per line, `#` comments), streamed as the command
    line streams it, so the file's size does not matter. A file without ids raises
    InputError unless `allow_empty`."""
    from .idfiles import IdSource

    how = _backfill_options(shard, retry_failed, refresh, with_parts)
    source = IdSource.from_path(os.fspath(path), skip_invalid=skip_invalid, skip_hint=SKIP_HINT)
    try:
        return _backfill(source, how, settings, allow_empty, raise_on_failure)
    finally:
        source.close()


def _backfill(
    source: IdSource,
    how: app.BackfillOptions,
    settings: Settings | None,
    allow_empty: bool,
    raise_on_failure: bool,
) -> dict[str, Any]:
    from .idfiles import require_ids

    if not (allow_empty or how.retry_failed):
        require_ids(source, "allow_empty=True")
    return _finish(app.backfill(source, how, _run_options(settings)), raise_on_failure)


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
    (etl/sync.py). When another sync holds the lock, returns `"run_skipped": True` (exit
    code 0) without doing anything."""
    from datetime import timedelta

    check_bound("page_size", page_size)
    check_bound("overlap_hours", overlap_hours)
    how = app.SyncOptions(
        full=full,
        overlap=timedelta(hours=overlap_hours),
        page_size=page_size,
        with_parts=with_parts,
    )
    return _finish(app.sync(how, _run_options(settings)), raise_on_failure)


# how the Python API asks for invalid ids to be left out (the CLI says --skip-invalid)
SKIP_HINT = "pass skip_invalid=True"


def _run_options(settings: Settings | None) -> app.RunOptions:
    """No signal handlers (the host process's business), no progress display."""
    return app.RunOptions(settings if settings is not None else settings_from_env())


def _backfill_options(
    shard: Shard | str | None, retry_failed: bool, refresh: bool, with_parts: Collection[str]
) -> app.BackfillOptions:
    chosen = parse_shard(shard, option="shard") if isinstance(shard, str) else shard
    return app.BackfillOptions(
        retry_failed=retry_failed, refresh=refresh, shard=chosen, with_parts=with_parts
    )


def _finish(result: app.RunResult, raise_on_failure: bool) -> dict[str, Any]:
    """The result as the command's --json prints it (`exit_code` included); with
    `raise_on_failure`, RunFailed unless it is 0."""
    facts = result.to_dict()
    if raise_on_failure and result.exit_code != 0:
        errors = "; ".join(result.summary.errors) if result.summary is not None else ""
        raise RunFailed(
            f"{result.command}: {facts['failed']} id(s) failed" + (f"; {errors}" if errors else ""),
            facts,
        )
    return facts
