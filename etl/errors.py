"""The project's exceptions, caught and mapped to messages and exit codes at the CLI boundary.

Exit codes: 0 done, 1 some ids failed, 2 usage or bad input, 3 configuration, auth or database.
"""

from __future__ import annotations


class RoomsyncError(Exception):
    """Base of every error roomsync raises on purpose."""

    exit_code = 1


class ConfigError(RoomsyncError):
    """A setting is missing or malformed."""

    exit_code = 3


class InputError(RoomsyncError):
    """Ids or files given by the user are not usable."""

    exit_code = 2


class AuthError(RoomsyncError):
    """The API refused the credentials (401/403): nothing else can succeed, so the run stops."""

    exit_code = 3


class DatabaseError(RoomsyncError):
    """The database is unreachable or refused an operation."""

    exit_code = 3


class LockLost(DatabaseError):
    """The sync lock is no longer held: the run must stop before writing anything more."""


class ApiError(RoomsyncError):
    """The API answered one id with an error that retrying will not fix (a 4xx other than 404)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(ApiError):
    """The API does not know this id (404)."""


class TransientError(ApiError):
    """A failure worth retrying: 429, 5xx, a connection reset, a timeout, a body cut short."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class BodyTooLargeError(ApiError):
    """The body is larger than the limit: retrying would read it again, so the id fails."""


class StoppedError(ApiError):
    """The run is stopping (a signal): the retry this id was waiting for is not sent."""


class WalkError(ApiError):
    """A list walk that cannot end as it should: endless or empty pages, more than `max_pages`,
    or a `links.next` that loops back or is not a string. The walk ends as a run-level error:
    a short list is never taken for the whole one."""


class UnreachableError(ConfigError):
    """No request has ever been answered: the space is wrong or down, so nothing can succeed."""


class PayloadError(RoomsyncError):
    """A 200 body that does not describe the session asked for, or has fields of the wrong type."""


class RunFailed(RoomsyncError):
    """A run ended with failed ids or a run-level error (exit code 1); raised by the Python API
    (etl.api) only when asked to. `summary` is the run's summary, as `--json` prints it."""

    def __init__(self, message: str, summary: dict[str, object]) -> None:
        super().__init__(message)
        self.summary = summary
