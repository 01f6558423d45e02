"""Unit tests of etl/bodies.py: bounded reads after decompression, bombs refused before they fill
memory, the declared length checked before reading, and JSON decoding that costs one id."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import random
import struct
import sys
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterable

import pytest

from etl.bodies import (
    DECODE_PIECE,
    _parse_int,
    check_length,
    decode_json,
    read_bounded,
    read_prefix,
)
from etl.errors import ApiError, BodyTooLargeError, PayloadError, TransientError


class Chunks:
    """An async iterator over `chunks` that counts how many were taken."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = list(chunks)
        self.taken = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._take()

    async def _take(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            self.taken += 1
            yield chunk


def read(chunks: Iterable[bytes], encoding: str, max_bytes: int) -> bytes:
    return asyncio.run(read_bounded(aiter(Chunks(chunks)), encoding, max_bytes))


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


BODY = json.dumps({"data": [{"id": n, "name": "room " * 10} for n in range(200)]}).encode()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("", lambda b: b),
        ("identity", lambda b: b),
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        (" GZIP ", gzip.compress),
        ("deflate", zlib.compress),
    ],
)
def test_a_body_within_the_limit_is_decoded_whole_in_any_chunking(
    encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    raw = encode(BODY)
    for size in (1, 7, len(raw)):
        assert read(split(raw, size), encoding, len(BODY)) == BODY


@pytest.mark.parametrize("encoding", ["", "gzip", "deflate"])
def test_one_byte_over_the_limit_is_too_large(encoding: str) -> None:
    raw = {"": BODY, "gzip": gzip.compress(BODY), "deflate": zlib.compress(BODY)}[encoding]
    with pytest.raises(BodyTooLargeError, match="larger than --max-body"):
        read(split(raw, 100), encoding, len(BODY) - 1)


def test_a_gzip_bomb_stops_at_the_limit_without_reading_the_rest() -> None:
    bomb = gzip.compress(b"\0" * (16 << 20))  # 16 MiB of zeros in about 16 KiB
    chunks = Chunks(split(bomb, 1024))
    limit = 256 << 10

    async def go() -> bytes:
        return await read_bounded(aiter(chunks), "gzip", limit)

    with pytest.raises(BodyTooLargeError):
        asyncio.run(go())
    # 256 KiB of output comes from a few hundred bytes of the bomb: the rest is never taken.
    assert chunks.taken < len(split(bomb, 1024)) // 4


def test_one_chunk_that_inflates_enormously_is_decoded_a_piece_at_a_time() -> None:
    """A single small network chunk holding a big bomb: decompression stops one piece past the
    limit instead of producing the whole payload at once (what httpx's own decoding would do)."""
    bomb = gzip.compress(b"\0" * (16 << 20))  # 16 MiB in one 16 KiB chunk
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLargeError):
            read([bomb], "gzip", DECODE_PIECE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20  # a few pieces, never the 16 MiB


def test_a_damaged_compressed_body_is_transient() -> None:
    damaged = bytearray(gzip.compress(BODY))
    damaged[20:40] = b"\xff" * 20
    with pytest.raises(TransientError, match="damaged"):
        read([bytes(damaged)], "gzip", 10 * len(BODY))


@pytest.mark.parametrize("encoding", ["br", "gzip, gzip", "compress", "zstd"])
def test_an_encoding_not_asked_for_is_an_api_error(encoding: str) -> None:
    with pytest.raises(ApiError, match="did not ask for") as info:
        read([BODY], encoding, len(BODY))
    assert not isinstance(info.value, TransientError)


def test_read_prefix_gives_a_short_message_and_nothing_for_a_long_or_damaged_one() -> None:
    async def prefix(chunks: list[bytes], encoding: str, limit: int) -> bytes:
        return await read_prefix(aiter(Chunks(chunks)), encoding, limit)

    assert asyncio.run(prefix([b'{"error": "no"}'], "", 100)) == b'{"error": "no"}'
    assert asyncio.run(prefix([b"x" * 101], "", 100)) == b""
    assert asyncio.run(prefix([b"\x1f\x8b garbage"], "gzip", 100)) == b""
    assert asyncio.run(prefix([b"x"], "br", 100)) == b""


def test_check_length_refuses_a_declared_length_over_the_limit() -> None:
    with pytest.raises(BodyTooLargeError):
        check_length("1001", "", 1000)
    with pytest.raises(BodyTooLargeError):
        check_length("1001", "identity", 1000)
    check_length("1000", "", 1000)


@pytest.mark.parametrize(
    ("length", "encoding"),
    [(None, ""), ("not-a-number", ""), ("99999999", "gzip")],
)
def test_check_length_leaves_to_the_read_what_it_cannot_judge(
    length: str | None, encoding: str
) -> None:
    """No length, a length that is not a number, or a compressed body (its length says nothing
    of the decoded size): the bounded read decides."""
    check_length(length, encoding, 1000)


def test_decode_json_accepts_valid_json_and_refuses_the_rest_as_transient() -> None:
    assert decode_json(b'{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    for bad in (b"", b'{"a": 1', b"<html>", b"\xff\xfe"):
        with pytest.raises(TransientError, match="not valid JSON"):
            decode_json(bad)


def test_numbers_no_column_can_hold_decode_and_are_left_to_the_records() -> None:
    """NaN, Infinity and an integer past Python's digit limit decode (as non-finite floats), so
    the page is kept and etl.records refuses only the item that holds them."""
    value = decode_json(b"[NaN, Infinity, -Infinity, 1e999, " + b"9" * 5000 + b"]")
    assert math.isnan(value[0])
    assert value[1:] == [math.inf, -math.inf, math.inf, math.inf]


def test_a_body_nested_past_the_recursion_limit_still_decodes() -> None:
    depth = 5000
    value = decode_json(b"[" * depth + b"]" * depth)
    for _ in range(depth - 1):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert value == []


def test_a_body_nested_beyond_any_stack_is_a_payload_error() -> None:
    depth = 300_000
    with pytest.raises(PayloadError, match="nested too deeply"):
        decode_json(b"[" * depth + b"]" * depth)


def test_a_deep_body_that_is_not_json_is_transient() -> None:
    with pytest.raises(TransientError, match="not valid JSON"):
        decode_json(b"[" * 5000 + b"x")


def _decoded(decode: Callable[[bytes], object], body: bytes) -> object:
    """What a decoder makes of `body`: its value as JSON text (NaN and big integers compare
    by their text), or that it refused it."""
    try:
        value = decode(body)
    except (ValueError, TransientError):  # TransientError from decode_json, ValueError before
        return "error"
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, 5000))  # a body nested 1,000 deep is written out too
    try:
        return json.dumps(value)
    finally:
        sys.setrecursionlimit(previous)


def _reference(body: bytes) -> object:
    """How bodies were decoded before: json.loads with `_parse_int`, a decoder per body (with
    room for the nesting a thread with a larger limit gave a deep body)."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, 5000))
    try:
        return json.loads(body, parse_int=_parse_int)
    finally:
        sys.setrecursionlimit(previous)


def _hostile_bodies(limit: int) -> list[bytes]:
    at_limit = b"9" * limit
    past_limit = b"9" * (limit + 1)
    return [
        b'{"a": [1, -0, 2.5e3, "x", true, null]}',
        b"[NaN, Infinity, -Infinity, 1e999, -1e999]",
        b'["\\ud800", "\\udfff\\ud800", "\\ud83d\\ude00", "\\u0000"]',
        b'"\xed\xa0\x80"',  # an encoded surrogate: accepted as before, refused by the records
        b"\xef\xbb\xbf" + b'{"bom": 1}',
        '{"utf16": "\u00e9"}'.encode("utf-16"),
        b'"\xff"',
        b"[" + b"18446744073709551616" + b", -9223372036854775809, " + b"1" * 40 + b"]",
        at_limit,  # exactly at the limit, and as short as it: an integer
        b" " + at_limit,  # longer than the limit: the slower decoder, the same integer
        past_limit,  # past the limit: infinity, by either decoder
        b"[" + past_limit + b"]",
        b"[" + b"1, " * limit + b"2]",
        b'{"a": 1}{}',
        b"",
        # what orjson refuses or changes, deeper in a page: the standard library decides
        b'{"data": [{"n": 1}, {"n": [18446744073709551616]}], "links": {}}',
        b'{"data": [{"n": -9223372036854775809}]}',
        b'{"data": [{"n": 9223372036854775808, "m": 18446744073709551615}]}',  # 64 bits: ints
        b'{"data": [{"x": 1e300, "y": -1.5e19, "z": 9.2e18}]}',  # floats, of any size
        b'{"b": 1, "a": 2, "b": 3}',  # a repeated key: its last value, in its first place
        b'{"data": [{"s": "\\u0000 \\ud800"}]}',
        b"[" * 1000 + b"]" * 1000,  # orjson takes it; deeper than Python's recursion limit
        b"[" * 1025 + b"]" * 1025,  # orjson refuses it
        b"[" * 50 + b"1e999" + b"]" * 50,
    ]


def test_decoding_is_what_json_loads_with_the_big_integer_hook_gave() -> None:
    """The decoders built once, and the C scanner's own integers for bodies too short to hold
    an integer past the digit limit, decode every body as before."""
    limit = sys.get_int_max_str_digits()
    for body in _hostile_bodies(limit):
        assert _decoded(decode_json, body) == _decoded(_reference, body), body[:60]


def test_decoding_follows_the_digit_limit_in_force() -> None:
    previous = sys.get_int_max_str_digits()
    try:
        for limit in (0, 640):
            sys.set_int_max_str_digits(limit)
            for body in _hostile_bodies(limit or 5000):
                assert _decoded(decode_json, body) == _decoded(_reference, body), body[:60]
    finally:
        sys.set_int_max_str_digits(previous)


def test_decoding_keeps_every_float_as_the_standard_library_reads_it() -> None:
    """orjson's floats are the standard library's, to the last bit (the stored JSON text is
    made from them): random doubles written out, and decimal texts of every length."""
    rng = random.Random(21)
    texts = []
    for _ in range(5000):
        (double,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if math.isfinite(double):
            texts.append(repr(double))
        digits = rng.randint(1, 30)
        texts.append(
            f"{rng.getrandbits(100) % 10**digits}.{rng.getrandbits(64)}e{rng.randint(-330, 310)}"
        )
    body = ("[" + ", ".join(texts) + "]").encode()
    assert _decoded(decode_json, body) == _decoded(_reference, body)
