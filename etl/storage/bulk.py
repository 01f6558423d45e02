"""The driver's own bulk paths, for statements that would otherwise pay SQLAlchemy's processing
of every bound value (about 35 µs a row for `room_sessions`' 33 columns).

- `stage`: rows, already converted to what the driver binds, go into a temporary table of the
  connection: `executemany` on SQLite, `COPY ... FROM STDIN` on PostgreSQL. One set-based
  statement then reads them from there (the upsert in `sessions.py`). The table lives as long as
  the connection, and holds rows only inside the transaction that staged them (PostgreSQL: ON
  COMMIT DELETE ROWS, a truncation, so that a long run's stage does not fill with dead rows
  that every later batch would scan again; SQLite: the caller empties it).
- `ids_in`: an `IN` over a list of ids bound as ONE parameter (a JSON array read with
  `json_each` on SQLite, an array on PostgreSQL): no placeholder per id, no chunks.

Errors keep SQLAlchemy's shape: COPY runs on the DBAPI connection, so a driver error from it is
wrapped as SQLAlchemy wraps the ones it sees (`DataError`, `IntegrityError`, ...), and
`sessions.write_batch` can tell a refused row from a database that is down.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa


def create_stage(conn: sa.Connection, name: str, columns: Sequence[sa.Column[Any]]) -> None:
    """The temporary table `name` with these columns (no constraints), if it is not there yet.

    SQLite's columns have no declared type, so a value keeps exactly the type it was bound with
    until the statement that reads it applies the real table's affinity, as a direct INSERT
    would. PostgreSQL's have the real columns' types: COPY parses its text with them.
    """
    conn.exec_driver_sql(_stage_ddl(conn.dialect, name, tuple(columns)))


@functools.lru_cache(maxsize=16)
def _stage_ddl(dialect: sa.Dialect, name: str, columns: tuple[sa.Column[Any], ...]) -> str:
    """create_stage's statement, built once, not per batch (compiling the types is not free)."""
    if dialect.name == "postgresql":
        types = [f"{c.name} {c.type.compile(dialect=dialect)}" for c in columns]
        return (
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({', '.join(types)}) "
            "ON COMMIT DELETE ROWS"
        )
    types = [c.name for c in columns]
    return f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({', '.join(types)})"


def stage(conn: sa.Connection, name: str, columns: Sequence[str], rows: Iterable[Any]) -> None:
    """Put `rows` (tuples in `columns`' order, values as the driver binds them) into the
    temporary table `name` through the driver's bulk path."""
    if conn.dialect.name == "postgresql":
        _copy(conn, name, columns, rows)
        return
    marks = ", ".join("?" * len(columns))
    conn.exec_driver_sql(f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({marks})", list(rows))


def _copy(conn: sa.Connection, name: str, columns: Sequence[str], rows: Iterable[Any]) -> None:
    import psycopg  # only PostgreSQL gets here, and its driver is psycopg 3

    statement = f"COPY {name} ({', '.join(columns)}) FROM STDIN"
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(
            statement, None, exc, psycopg.Error, hide_parameters=True, dialect=conn.dialect
        ) from None


def sqlite_time(value: datetime) -> str:
    """An aware timestamp as SQLAlchemy's SQLite DATETIME stores UTC (`2026-11-25
    12:00:00.000000`), so that values bound here compare and sort with the stored ones; a naive
    one is refused, as UTCDateTime does."""
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given for a UTC column")
    return value


def driver_time(dialect: str) -> Callable[[datetime], Any]:
    """How a UTC column's value is bound by the driver: SQLite text, psycopg an aware datetime."""
    return _aware if dialect == "postgresql" else sqlite_time


def placeholder(dialect: str) -> str:
    """The driver's positional parameter mark (psycopg `%s`, sqlite3 `?`)."""
    return "%s" if dialect == "postgresql" else "?"


def ids_in(dialect: str, column: str) -> str:
    """SQL that `column` is one of the ids bound (`ids_param`) as the one parameter."""
    if dialect == "postgresql":
        return f"{column} = ANY(%s::uuid[])"
    return f"{column} IN (SELECT value FROM json_each(?))"


def ids_param(dialect: str, ids: Sequence[str]) -> Any:
    """The one parameter of `ids_in`: a JSON array (SQLite), or PostgreSQL array text.

    PostgreSQL: the array's text (`{"id","id"}`), which the statement casts to uuid[], built in
    one join rather than by psycopg's list dumper, which checks every element in Python. Each
    element is quoted, so an id holds any character but a quote or a backslash; an id that holds
    one of those (never a UUID) goes as a list, which psycopg quotes itself.
    """
    if dialect != "postgresql":
        return json.dumps(list(ids))
    if not ids:
        return "{}"
    body = '","'.join(ids)
    if "\\" in body or body.count('"') != 2 * (len(ids) - 1):
        return list(ids)
    return '{"' + body + '"}'
