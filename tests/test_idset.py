"""IdSet: the walks' set of seen ids, 16 bytes an id."""

from __future__ import annotations

import random
import tracemalloc
import uuid
from collections.abc import Callable

from etl.idset import KEY_BYTES, IdSet, _found


def ids(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def test_add_says_whether_the_id_is_new_and_in_finds_it() -> None:
    a, b = ids(2)
    seen = IdSet()
    assert a not in seen
    assert seen.add(a) is True
    assert seen.add(a) is False
    assert a in seen and b not in seen
    assert len(seen) == 1


def test_the_same_uuid_in_another_form_is_the_same_member() -> None:
    (a,) = ids(1)
    seen = IdSet([a])
    assert a.upper() in seen
    assert seen.add("{" + a + "}") is False
    assert len(seen) == 1


def test_things_that_are_not_uuids_are_never_members() -> None:
    seen = IdSet(ids(10))
    assert "not-a-uuid" not in seen
    assert 42 not in seen


def test_many_ids_through_growth_all_kept_once() -> None:
    many = ids(150_000, seed=2)  # past 64 x 1024: the buckets double more than once
    seen = IdSet()
    assert all(seen.add(i) for i in many)
    assert len(seen) == len(many)
    assert all(i in seen for i in many)
    assert not any(seen.add(i) for i in many[::7])
    assert sorted(seen) == sorted(many)
    assert not any(i in seen for i in ids(1000, seed=3))


def test_a_match_straddling_two_keys_is_not_a_member() -> None:
    first, second = (uuid.UUID(i).bytes for i in ids(2, seed=4))
    bucket = bytearray(first + second)
    straddling = first[KEY_BYTES // 2 :] + second[: KEY_BYTES // 2]
    assert not _found(bucket, straddling)
    assert _found(bucket, first) and _found(bucket, second)


def test_memory_is_about_sixteen_bytes_an_id() -> None:
    many = ids(100_000, seed=5)
    tracemalloc.start()
    try:
        seen = IdSet(many)
        used, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(seen) == 100_000
    assert used / len(seen) < 24  # a set of the strings costs about 120 bytes an id


def test_seen_values_count_uuids_once_and_keep_other_values() -> None:
    from etl.idset import SeenValues

    a, b = ids(2, seed=6)
    seen = SeenValues()
    seen.update([a, a.upper(), b, "not-a-uuid", 7, None])
    assert len(seen) == 5  # a (in two spellings), b, and three values that are not UUIDs
    seen.update([b, 7, "not-a-uuid"])
    assert len(seen) == 5  # nothing new


def test_the_fast_reading_of_an_id_agrees_with_uuid_on_every_form() -> None:
    """The 36-character fast path gives uuid.UUID's bytes, and refuses what it refuses."""
    from etl.idset import _key

    rng = random.Random(7)
    forms = []
    for _ in range(500):
        u = uuid.UUID(int=rng.getrandbits(128))
        text = str(u)
        forms += [text, text.upper(), f"urn:uuid:{text}", "{" + text + "}", text.replace("-", "")]
    for text in forms:
        assert _key(text) == uuid.UUID(text).bytes, text
    good = str(uuid.UUID(int=rng.getrandbits(128)))
    odd = [
        good[:8] + "-" + good[9:13] + " " + good[14:],  # a space where a hyphen goes
        good[:10] + " " + good[11:],  # a space among the digits
        good[:9] + "  " + good[11:],  # spaces for a whole byte: fromhex skips them (15 bytes)
        good[:10] + "g" + good[11:],
        good[:35] + "\u0661",  # a non-ASCII digit (uuid.UUID takes it: so must we)
        "-" * 36,
    ]
    for text in odd:
        assert _reading(_key, text) == _reading(lambda t: uuid.UUID(t).bytes, text), text


def _reading(read: Callable[[str], bytes], text: str) -> bytes | str:
    try:
        return read(text)
    except ValueError:
        return "refused"
