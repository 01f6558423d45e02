"""Small SQL helpers every table module shares: the dialect's own INSERT (the one with
ON CONFLICT), chunks of ids small enough for any driver, and reads on a connection of their own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from .dberrors import map_errors

CHUNK = 500  # ids per IN (...) list: well inside every driver's parameter limit
T = TypeVar("T")

DialectInsert = postgresql.Insert | sqlite.Insert


def chunked(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """`items` in lists of at most `size`, in order; an iterator stays streamed."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def insert_for(dialect: str, table: sa.Table) -> DialectInsert:
    """The dialect's own INSERT for `table`, the one with ON CONFLICT clauses."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"roomsync supports SQLite and PostgreSQL, not {dialect}")


def read_rows(engine: Engine, query: Any) -> list[Any]:
    """Every row of a read-only `query`, on a connection of its own; a DatabaseError if the
    database cannot answer."""
    with map_errors(engine.url, "reading"), engine.connect() as conn:
        return list(conn.execute(query).all())


def write(engine: Engine, statement: Any) -> list[Any]:
    """Run one write in its own transaction; return the first column of the rows it returns."""
    with map_errors(engine.url, "writing to"), engine.begin() as conn:
        result = conn.execute(statement)
        return list(result.scalars()) if result.returns_rows else []


@contextlib.contextmanager
def transaction(engine: Engine, *, commit: bool) -> Iterator[sa.Connection]:
    """engine.begin(), or a transaction that is always rolled back (a dry run)."""
    if commit:
        with engine.begin() as conn:
            yield conn
        return
    with engine.connect() as conn, conn.begin() as begun:
        try:
            yield conn
        finally:
            begun.rollback()


def in_the_data(exc: BaseException) -> bool:
    """Whether the database (or the driver, binding values) refused what the rows hold, as
    opposed to being unreachable or broken: such a batch is split down to the refused rows."""
    if isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        # SQLite reports malformed or too deeply nested JSON as an OperationalError.
        return "JSON" in str(exc.orig)
    return True  # raised while encoding values: StatementError, ValueError, UnicodeError ...
