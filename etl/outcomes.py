"""The words roomsync uses for what happened: one place, the same words everywhere.

`Outcome` is what happened to one id (the summary's counts, the `sync_runs` count columns, logs);
`RunOutcome` is how a whole run ended (`sync_runs.outcome`). Both are `StrEnum`s, so a member is
its word: it compares equal to the text stored in the ledger and prints as that text.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """What happened to one id in a run."""

    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    NOT_FOUND = "not_found"
    FAILED = "failed"


class RunOutcome(StrEnum):
    """How a run ended, as recorded in `sync_runs.outcome`."""

    RUNNING = "running"  # started, not finished (yet, or ever: see KILLED)
    OK = "ok"  # every id stored or confirmed not found
    FAILED = "failed"  # some ids (or the list walk) failed; the rest is stored
    INTERRUPTED = "interrupted"  # stopped by SIGINT/SIGTERM
    ERROR = "error"  # ended early by an error (auth, database)
    KILLED = "killed"  # its process died without finishing it


#: Outcomes that are counted per run, in the order summaries show them.
COUNTED: tuple[Outcome, ...] = tuple(Outcome)
