"""Unit tests of etl/storage/dberrors.py: every database failure leaves storage as one
DatabaseError line, with the URL's secrets removed and the driver's exception not chained."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from etl.errors import DatabaseError
from etl.storage.dberrors import describe_error, map_errors
from etl.storage.engines import make_engine


def test_database_errors_are_mapped_once_without_the_password() -> None:
    url = "postgresql://roomsync:s3cret-pw@db.internal/app"
    driver = Exception("FATAL: password authentication failed (password s3cret-pw)\nDETAIL: x")
    with pytest.raises(DatabaseError) as mapped, map_errors(url, "connecting to"):
        raise sa.exc.OperationalError("SELECT 1", {}, driver)
    message = str(mapped.value)
    assert message == (
        "connecting to postgresql://roomsync:***@db.internal/app failed: "
        "FATAL: password authentication failed (password ***)"
    )
    assert mapped.value.__cause__ is None and mapped.value.__suppress_context__


def test_secrets_in_the_query_string_are_removed_too() -> None:
    url = "postgresql://roomsync@db.internal/app?sslpassword=k3y-pass&application_name=rs"
    driver = Exception("could not load key: bad passphrase 'k3y-pass'")
    with pytest.raises(DatabaseError) as mapped, map_errors(url, "connecting to"):
        raise sa.exc.OperationalError("SELECT 1", {}, driver)
    assert "k3y-pass" not in str(mapped.value)
    assert "application_name=rs" in str(mapped.value)


def test_a_driver_error_without_text_is_named_by_its_type() -> None:
    class SomeDriverError(Exception):
        pass

    error = sa.exc.DBAPIError("SELECT 1", {}, SomeDriverError())
    assert describe_error(error, "sqlite://") == "SomeDriverError"


def test_only_the_first_non_blank_line_is_kept() -> None:
    error = sa.exc.OperationalError("SELECT 1", {}, Exception("\n  first line  \nsecond line"))
    assert describe_error(error, "sqlite://") == "first line"


def test_errors_that_are_not_the_database_pass_through() -> None:
    with pytest.raises(KeyError), map_errors("sqlite://", "reading"):
        raise KeyError("not a database failure")


def test_a_real_failure_on_each_backend_is_mapped(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        with (
            pytest.raises(DatabaseError) as mapped,
            map_errors(engine.url, "reading"),
            engine.connect() as conn,
        ):
            conn.execute(sa.text("SELECT * FROM no_such_table"))
    finally:
        engine.dispose()
    message = str(mapped.value)
    assert message.startswith("reading ") and "no_such_table" in message and "\n" not in message
    password = engine.url.password
    assert not password or str(password) not in message
