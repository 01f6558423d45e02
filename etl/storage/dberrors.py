"""Database failures mapped once, as httpx maps transport errors once: every SQLAlchemy or
driver error that leaves the storage package does so as a DatabaseError, through `map_errors`,
with the URL's secrets removed from the message (the driver may echo parts of the URL)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ..config import mask_url, url_secrets
from ..errors import DatabaseError


def describe_error(exc: BaseException, url: Any) -> str:
    """One line about a database failure, with every secret of `url` removed."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    text = lines[0] if lines else type(orig).__name__
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text


def database_error(exc: BaseException, url: Any, doing: str) -> DatabaseError:
    """A DatabaseError for `exc`; `url` is the real URL (text or an engine's URL object), so that
    its secrets can be found and removed from the driver's message."""
    return DatabaseError(f"{doing} {mask_url(url)} failed: {describe_error(exc, url)}")


@contextlib.contextmanager
def map_errors(url: Any, doing: str) -> Iterator[None]:
    """Turn any SQLAlchemyError raised inside into `database_error(exc, url, doing)`, without
    the driver's exception chained to it (its text may hold the URL's password)."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise database_error(exc, url, doing) from None
