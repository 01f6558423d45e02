"""The batched upsert on SQLite and PostgreSQL: exact rows, guards, merges, concurrency."""

from __future__ import annotations

import copy
import json
import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from etl.errors import DatabaseError
from etl.fake_api import LIST_ONLY_FIELDS, by_id_view, generate_sessions
from etl.outcomes import Outcome
from etl.records import parse_session
from etl.storage.schema import room_sessions
from etl.storage.sessions import upsert_sessions

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def rows_of(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [parse_session(p, p["id"]) for p in payloads]


def stored(engine: Engine, session_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(room_sessions).where(room_sessions.c.id == session_id)).one()
    return dict(row._mapping)


def later(payload: dict[str, Any], seconds: int = 60, **changes: Any) -> dict[str, Any]:
    updated = datetime.fromisoformat(payload["updated_at"]) + timedelta(seconds=seconds)
    return payload | {"updated_at": updated.isoformat().replace("+00:00", "Z")} | changes


def test_insert_then_identical_is_unchanged(engine: Engine) -> None:
    payloads = generate_sessions(5, seed=2)
    assert set(upsert_sessions(engine, rows_of(payloads), NOW).values()) == {Outcome.INSERTED}
    again = upsert_sessions(engine, rows_of(payloads), NOW + timedelta(minutes=1))
    assert set(again.values()) == {Outcome.UNCHANGED}
    row = stored(engine, payloads[0]["id"])
    assert row["first_synced_at"] == row["last_synced_at"] == NOW  # untouched by the re-run


def test_stored_columns_match_the_payload(engine: Engine) -> None:
    payload = generate_sessions(1, seed=4)[0]
    upsert_sessions(engine, rows_of([payload]), NOW)
    row = stored(engine, payload["id"])
    expected = parse_session(payload, payload["id"])
    for name, value in expected.items():
        assert row[name] == value, name
    assert row["created_at"].tzinfo is not None


def test_id_reads_as_canonical_lowercase_text_in_sql(engine: Engine) -> None:
    payload = generate_sessions(1, seed=5)[0]
    upsert_sessions(engine, rows_of([payload]), NOW)
    with engine.connect() as conn:
        text_id = conn.execute(sa.text("SELECT CAST(id AS TEXT) FROM room_sessions")).scalar_one()
        found = conn.execute(
            sa.text("SELECT count(*) FROM room_sessions WHERE id = :id"), {"id": payload["id"]}
        ).scalar_one()
    assert text_id == payload["id"] == payload["id"].lower()
    assert found == 1


def test_newer_payload_updates_and_older_never_overwrites(engine: Engine) -> None:
    payload = generate_sessions(1, seed=6)[0]
    newer = later(payload, status="completed", duration=999)
    upsert_sessions(engine, rows_of([newer]), NOW)
    assert upsert_sessions(engine, rows_of([payload]), NOW + timedelta(1)) == {
        payload["id"]: Outcome.UNCHANGED
    }
    assert stored(engine, payload["id"])["duration"] == 999
    newest = later(newer, status="completed", duration=1000)
    assert upsert_sessions(engine, rows_of([newest]), NOW + timedelta(2)) == {
        payload["id"]: Outcome.UPDATED
    }
    row = stored(engine, payload["id"])
    assert row["duration"] == 1000 and row["raw"]["duration"] == 1000
    assert row["first_synced_at"] == NOW and row["last_synced_at"] == NOW + timedelta(2)


def test_same_updated_at_with_changed_columns_updates(engine: Engine) -> None:
    payload = generate_sessions(1, seed=7)[0]
    upsert_sessions(engine, rows_of([payload]), NOW)
    changed = payload | {"display_name": "renamed"}
    assert upsert_sessions(engine, rows_of([changed]), NOW + timedelta(1)) == {
        payload["id"]: Outcome.UPDATED
    }
    assert stored(engine, payload["id"])["display_name"] == "renamed"


def test_list_only_fields_survive_a_by_id_refresh(engine: Engine) -> None:
    listed = next(s for s in generate_sessions(20, seed=8) if s["cost_in_dollars"] is not None)
    listed = listed | {"enable_room_previews": True, "locked_cover": "cover.png"}
    upsert_sessions(engine, rows_of([listed]), NOW)
    refreshed = later(by_id_view(listed), display_name="after")
    assert upsert_sessions(engine, rows_of([refreshed]), NOW + timedelta(1)) == {
        listed["id"]: Outcome.UPDATED
    }
    row = stored(engine, listed["id"])
    assert row["display_name"] == "after"
    for key in LIST_ONLY_FIELDS:
        assert row[key] == listed[key], key
        assert row["raw"][key] == listed[key], key
    assert row["raw"]["display_name"] == "after"
    assert row["raw"]["updated_at"] == refreshed["updated_at"]
    # The same by-id body again is no change at all.
    assert upsert_sessions(engine, rows_of([refreshed]), NOW + timedelta(2)) == {
        listed["id"]: Outcome.UNCHANGED
    }


def test_by_id_rows_do_not_gain_list_only_keys(engine: Engine) -> None:
    payload = by_id_view(generate_sessions(1, seed=9)[0])
    upsert_sessions(engine, rows_of([payload]), NOW)
    upsert_sessions(engine, rows_of([later(payload, layout="x")]), NOW + timedelta(1))
    raw = stored(engine, payload["id"])["raw"]
    assert not set(LIST_ONLY_FIELDS) & set(raw)
    assert raw["end_time"] == payload["end_time"]  # null values are kept as keys


def test_one_statement_per_batch(engine: Engine) -> None:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        upsert_sessions(engine, rows_of(generate_sessions(300, seed=10)), NOW)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    inserts = [s for s in statements if s.lstrip().startswith("INSERT INTO room_sessions")]
    assert len(inserts) == 1 and "ON CONFLICT" in inserts[0].upper()
    assert not [s for s in statements if s.lstrip().upper().startswith("SELECT")]


def test_duplicate_ids_in_one_batch_keep_the_newest(engine: Engine) -> None:
    payload = generate_sessions(1, seed=11)[0]
    newer = later(payload, duration=4242)
    assert upsert_sessions(engine, rows_of([newer, payload]), NOW) == {
        payload["id"]: Outcome.INSERTED
    }
    assert stored(engine, payload["id"])["duration"] == 4242


def test_rows_the_database_refuses_fail_alone_and_the_rest_is_written(engine: Engine) -> None:
    """A safety net behind etl.records' checks: whatever the database still refuses for what a
    row holds costs that row's id (into the failure ledger), never the batch."""
    from etl.storage.ledger import pending_failures, start_run
    from etl.storage.sessions import write_batch

    payloads = generate_sessions(40, seed=12)
    upsert_sessions(engine, rows_of(payloads[:1]), NOW)
    rows = rows_of([later(payloads[0], duration=1), *payloads[1:]])
    rows[5]["created_at"] = None  # violates NOT NULL
    rows[17]["name"] = "lone \ud800 surrogate"  # cannot be encoded as UTF-8
    refused = {rows[5]["id"], rows[17]["id"]}
    run_id = start_run(engine, "test")
    result = write_batch(engine, rows, NOW + timedelta(1), run_id=run_id)
    assert set(result.refused) == refused
    assert all("refused" in reason for reason in result.refused.values())
    assert {i for i, o in result.outcomes.items() if o == Outcome.FAILED} == refused
    assert sorted(pending_failures(engine)) == sorted(refused)
    with engine.connect() as conn:
        stored_ids = set(conn.execute(sa.select(room_sessions.c.id)).scalars())
    assert {str(i) for i in stored_ids} == {p["id"] for p in payloads} - refused
    assert stored(engine, payloads[0]["id"])["duration"] == 1


def test_a_database_that_is_gone_is_a_database_error(tmp_path: Path) -> None:
    from etl.storage.engines import make_engine

    url = f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    engine = make_engine(url)
    try:
        with pytest.raises(DatabaseError):
            upsert_sessions(engine, rows_of(generate_sessions(3, seed=12)), NOW)
    finally:
        engine.dispose()


def test_invalid_json_left_in_raw_by_an_old_version_does_not_block_writes(
    engine: Engine, backend: str
) -> None:
    payload = generate_sessions(1, seed=14)[0]
    upsert_sessions(engine, rows_of([payload]), NOW)
    if backend == "sqlite":  # jsonb cannot hold invalid JSON: only SQLite files can have it
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE room_sessions SET raw = '{\"extra\": Infinity}'"))
    newer = later(payload, duration=77)
    after = NOW + timedelta(minutes=1)
    assert upsert_sessions(engine, rows_of([newer]), after) == {payload["id"]: Outcome.UPDATED}
    assert stored(engine, payload["id"])["raw"]["duration"] == 77


def test_a_row_dated_in_the_future_does_not_freeze(engine: Engine) -> None:
    payload = generate_sessions(1, seed=15)[0]
    future = payload | {"updated_at": "2999-01-01T00:00:00Z", "duration": 1}
    upsert_sessions(engine, rows_of([future]), NOW)
    real = later(payload, duration=2)  # a real update, dated before the broken one
    after = NOW + timedelta(minutes=1)
    assert upsert_sessions(engine, rows_of([real]), after) == {payload["id"]: Outcome.UPDATED}
    assert stored(engine, payload["id"])["duration"] == 2
    # an honest newest-wins row still refuses an older body
    older = later(payload, seconds=-3600, duration=3)
    assert upsert_sessions(engine, rows_of([older]), after) == {payload["id"]: Outcome.UNCHANGED}
    # while the upstream keeps sending the broken date, an identical body changes nothing
    again = NOW + timedelta(minutes=2)
    assert upsert_sessions(engine, rows_of([future]), again) == {payload["id"]: Outcome.UPDATED}
    assert upsert_sessions(engine, rows_of([future]), again) == {payload["id"]: Outcome.UNCHANGED}


def _writer(url: str, payloads: list[dict[str, Any]], rounds: int, seed: int) -> None:
    """One of two competing processes: upserts every version of every payload, shuffled."""
    import random

    from etl.storage.engines import make_engine

    engine = make_engine(url)
    rng = random.Random(seed)
    for _ in range(rounds):
        batch = copy.deepcopy(payloads)
        rng.shuffle(batch)
        for start in range(0, len(batch), 50):
            upsert_sessions(engine, rows_of(batch[start : start + 50]), datetime.now(UTC))
    engine.dispose()


def test_two_processes_upserting_overlapping_ids(engine: Engine, migrated_url: str) -> None:
    """Exactly one row per id, and the newest version of each wins, whoever wrote last."""
    base = generate_sessions(120, seed=13)
    versions = [later(p, seconds=k * 60, duration=k) for p in base for k in range(1, 4)]
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_writer, args=(migrated_url, versions[i::2] + versions[::3], 2, i))
        for i in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    with engine.connect() as conn:
        rows = conn.execute(sa.select(room_sessions.c.id, room_sessions.c.duration)).all()
    # Every id's newest version (k=3) is in one writer's share; it must be what is stored.
    assert sorted(str(r[0]) for r in rows) == sorted(p["id"] for p in base)
    assert {duration for _, duration in rows} == {3}


def test_a_batch_of_many_failures_is_recorded_whole(engine: Engine) -> None:
    """More failures than one statement's parameters allow (PostgreSQL: 65,535)."""
    import uuid

    from etl.storage.ledger import pending_failures, start_run
    from etl.storage.sessions import write_batch

    run_id = start_run(engine, "test")
    failures = {str(uuid.UUID(int=n + 1)): "HTTP 500" for n in range(17_000)}
    write_batch(engine, [], NOW, failures=failures, run_id=run_id)
    assert len(pending_failures(engine)) == 17_000


AWKWARD_JSON: list[Any] = [
    {"a": 1, "b": [1.5, -0.0, 1e-07, 1e22, 12345678901234567890], "c": None, "d": True},
    {"naïve": 'café ☕ \u2028 \x00 "quoted" \\ back', "emoji": "😀", "": {}},
    {"nested": [[[{"x": []}]]], "float": 0.1 + 0.2, "neg": -17, "big": 2**70},
    {"tab\t": "new\nline", "ctrl": "\x1f\x7f", "keys": {"2": 2, "10": 10, "1": 1}},
]


@pytest.mark.parametrize("value", AWKWARD_JSON)
def test_raw_is_encoded_exactly_as_json_dumps(value: Any) -> None:
    """SQLite's unchanged detection compares the stored JSON text: the upsert's encoder must
    write what `json.dumps` (the format stored by earlier versions) writes, byte for byte."""
    from etl.storage.sessions import encode_json

    assert encode_json(value) == json.dumps(value)
    assert encode_json(value) == encode_json(copy.deepcopy(value))  # no state between calls


def test_stored_raw_text_is_json_dumps_and_an_identical_body_stays_unchanged(
    engine: Engine,
) -> None:
    payload = generate_sessions(1, seed=21)[0] | {"note": "café ☕ 😀", "ratio": 0.1 + 0.2}
    row = rows_of([payload])
    assert upsert_sessions(engine, row, NOW) == {payload["id"]: Outcome.INSERTED}
    assert stored(engine, payload["id"])["raw"] == payload
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            text = conn.exec_driver_sql(
                "SELECT raw FROM room_sessions WHERE id = ?", (payload["id"],)
            ).scalar_one()
        assert text == json.dumps(payload)
    again = upsert_sessions(engine, rows_of([payload]), NOW + timedelta(minutes=1))
    assert again == {payload["id"]: Outcome.UNCHANGED}


def test_the_postgresql_stage_holds_nothing_between_batches(engine: Engine) -> None:
    """The batch goes through a temporary table of the connection: a long run writes batch
    after batch through it, and each later batch would scan every row an earlier one left,
    dead or alive. Between batches it holds no row and no page."""
    if engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL stages the batch (COPY)")
    from etl.storage.sessions import STAGE

    payloads = generate_sessions(600, seed=31)
    for start in range(0, 600, 200):
        upsert_sessions(engine, rows_of(payloads[start : start + 200]), NOW)
        with engine.connect() as conn:  # the pool's one connection: the one that staged
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {STAGE}").scalar_one() == 0
            pages = conn.exec_driver_sql(f"SELECT pg_relation_size('{STAGE}')").scalar_one()
            assert pages == 0


def test_written_rows_leave_the_failure_ledger_and_the_others_stay(engine: Engine) -> None:
    from etl.storage.ledger import pending_failures, start_run
    from etl.storage.sessions import write_batch

    payloads = generate_sessions(4, seed=41)
    ids = [p["id"] for p in payloads]
    run_id = start_run(engine, "test")
    write_batch(engine, [], NOW, failures=dict.fromkeys(ids[:3], "HTTP 500"), run_id=run_id)
    assert sorted(pending_failures(engine)) == sorted(ids[:3])
    written = write_batch(engine, rows_of([payloads[0], payloads[1], payloads[3]]), NOW)
    assert set(written.outcomes.values()) == {Outcome.INSERTED}
    assert pending_failures(engine) == [ids[2]]
    write_batch(engine, rows_of(payloads[2:3]), NOW + timedelta(minutes=1))
    assert pending_failures(engine) == []
