"""The words roomsync uses for what happened and for a session's state: one place, the same
words everywhere.

`Outcome` is what happened to one id (the summary's counts, the `sync_runs` count columns, logs);
`RunOutcome` is how a whole run ended (`sync_runs.outcome`); `SessionStatus` holds the API's
status words the code acts on. All are `StrEnum`s, so a member is its word: it compares equal to
the text stored (in the ledger, in `room_sessions.status`) and prints as that text.

"Live" means two things, and each has its own name here:
- *live upstream* (`LIVE_UPSTREAM`): the session is going on now, `status` in-progress. What
  `status` counts as live, and what the list's `status=in-progress` filter selects.
- *still needs a refresh*: a stored row whose status is not in `FINAL_STATUSES` -- an
  in-progress one, a null status or a word the API may add later. It may still change, so a
  sync looks at it again (etl.backlog's `OpenRow.live`).
"""

from __future__ import annotations

from enum import StrEnum

#: what a result's `to_dict()` gives (`--json` prints it): JSON-shaped, read by json.dumps
JsonObject = dict[str, object]


class Outcome(StrEnum):
    """What happened to one id in a run."""

    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"  # a backfill left it alone: stored final with its final cost
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


class SessionStatus(StrEnum):
    """The API's words for a room session's `status` that roomsync acts on. The field is an
    open set (etl.records stores any word): these are the ones with a meaning here."""

    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"


#: Statuses after which a session no longer changes upstream (its final cost is then listed).
FINAL_STATUSES: frozenset[str] = frozenset({SessionStatus.COMPLETED})

#: Live upstream: the session is going on now (see the module's note on "live").
LIVE_UPSTREAM = SessionStatus.IN_PROGRESS
