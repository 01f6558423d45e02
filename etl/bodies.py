"""Response bodies within bounds: read at most `max_bytes` after decompression, then JSON.

httpx would decompress a whole network chunk at once (a 64 KiB chunk of a gzip bomb is 64 MiB),
so the client reads the raw bytes and decompresses here, a bounded piece at a time: a body over
the limit fails as soon as the limit is passed, whatever it claims or however it is encoded.

Decoding accepts any valid JSON; what no column can hold (NaN, Infinity, numbers that overflow,
nesting too deep, lone surrogates) is refused per session by `etl.records`, so that one such
session in a list page costs that session, not the page. A body nested deeper than Python's
default recursion allows is decoded once more in a thread with room for it.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import zlib
from collections.abc import AsyncIterable
from typing import Any, Protocol

import orjson

from .config import MIB
from .errors import ApiError, BodyTooLargeError, PayloadError, TransientError

DECODE_PIECE = 64 * 1024  # decompressed bytes produced per step
DEEP_RECURSION_LIMIT = 200_000
DEEP_STACK_BYTES = 512 * MIB  # virtual; only the pages touched are committed


class _Decoder(Protocol):
    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...

    @property
    def unconsumed_tail(self) -> bytes: ...


class _Identity:
    unconsumed_tail = b""

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        return data


def _decoder(content_encoding: str) -> _Decoder:
    encodings = [e.strip().lower() for e in content_encoding.split(",") if e.strip()]
    if not encodings or encodings == ["identity"]:
        return _Identity()
    if encodings in (["gzip"], ["x-gzip"]):
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if encodings == ["deflate"]:
        return zlib.decompressobj(wbits=zlib.MAX_WBITS)
    raise ApiError(f"the response uses a Content-Encoding roomsync did not ask for: {encodings}")


async def read_bounded(
    raw_chunks: AsyncIterable[bytes], content_encoding: str, max_bytes: int
) -> bytes:
    """The decoded body, or BodyTooLargeError as soon as it passes `max_bytes`."""
    if not content_encoding:  # the usual case, without building a decoder
        return await _read_identity(raw_chunks, max_bytes)
    decoder = _decoder(content_encoding)
    if isinstance(decoder, _Identity):
        return await _read_identity(raw_chunks, max_bytes)
    body = bytearray()
    try:
        async for chunk in raw_chunks:
            data = chunk
            while data:
                room = max_bytes - len(body) + 1  # one byte over is enough to know
                piece = decoder.decompress(data, min(DECODE_PIECE, room))
                body += piece
                if len(body) > max_bytes:
                    raise _too_large(max_bytes)
                data = decoder.unconsumed_tail
                if not piece and data:  # no progress: the decoder needs more input
                    break
    except zlib.error as exc:
        raise TransientError(f"the compressed body is damaged: {exc}") from exc
    return bytes(body)


async def _read_identity(raw_chunks: AsyncIterable[bytes], max_bytes: int) -> bytes:
    """An unencoded body: its pieces kept as they come (one piece, the usual case with a
    Content-Length, is returned as it is), refused as soon as they pass `max_bytes`."""
    pieces: list[bytes] = []
    size = 0
    async for chunk in raw_chunks:
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        pieces.append(chunk)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


async def read_prefix(raw_chunks: AsyncIterable[bytes], content_encoding: str, limit: int) -> bytes:
    """A short body (an error's message) decoded, or nothing when it is longer than `limit`,
    damaged or oddly encoded: the status code alone then says what happened."""
    try:
        return await read_bounded(raw_chunks, content_encoding, limit)
    except ApiError:  # BodyTooLargeError and TransientError included
        return b""


def _too_large(max_bytes: int) -> BodyTooLargeError:
    return BodyTooLargeError(
        f"the response body is larger than --max-body ({max_bytes / MIB:g} MiB); not read"
    )


def check_length(content_length: str | None, content_encoding: str, max_bytes: int) -> None:
    """Refuse before reading when an unencoded body declares more than the limit."""
    if content_length is None or content_encoding.strip().lower() not in ("", "identity"):
        return
    try:
        declared = int(content_length)
    except ValueError:
        return
    if declared > max_bytes:
        raise _too_large(max_bytes)


def _parse_int(text: str) -> int | float:
    """Integers past Python's limit on digits come back as infinity, refused per session."""
    try:
        return int(text)
    except ValueError:
        return math.inf


# Built once: json.loads(..., parse_int=...) builds a decoder for every body.
_DECODER = json.JSONDecoder()
_BIG_INT_DECODER = json.JSONDecoder(parse_int=_parse_int)


def _loads(content: bytes) -> Any:
    """json.loads(content, parse_int=_parse_int), with the decoders built once.

    NaN, Infinity and numbers that overflow decode to non-finite floats here: valid syntax,
    refused later per session by etl.records, so that one such item costs one id, not a page.
    A body no longer than Python's limit on an integer's digits cannot hold an integer past it:
    the C scanner's own integers are then the same as `_parse_int`'s, without a call per number.
    """
    text = content.decode(json.detect_encoding(content), "surrogatepass")  # as json.loads does
    limit = sys.get_int_max_str_digits()
    decoder = _DECODER if limit == 0 or len(content) <= limit else _BIG_INT_DECODER
    return decoder.decode(text)


# orjson turns an integer past 64 bits into a float, of magnitude 2**63 or more; a body holding
# a float that large is decoded again by the standard library, which keeps such an integer
# (a real float that large costs that second decode, nothing else).
_BIG = float(2**63)


def _holds_big_float(value: Any) -> bool:
    """Whether a decoded value holds a float of magnitude 2**63 or more, at any depth (walked
    without recursion: orjson accepts nesting deeper than Python's recursion limit)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            items = item.values()
        elif kind is list:
            items = item
        else:
            if kind is float and not -_BIG < item < _BIG:
                return True
            continue
        for element in items:
            element_kind = type(element)
            if element_kind is float:
                if not -_BIG < element < _BIG:
                    return True
            elif element_kind is dict or element_kind is list:
                stack.append(element)
    return False


def decode_json(content: bytes) -> Any:
    """The body as JSON; bytes that are not JSON are a TransientError (a body cut short is).

    orjson decodes first (a third of the standard library's CPU). What it refuses or may have
    changed is decoded by the standard library as before, so every verdict is the same: NaN and
    Infinity, numbers that overflow, integers past 64 bits (orjson makes them floats), lone
    surrogates, a byte order mark or UTF-16, nesting past 1,024, and bytes that are not JSON.
    """
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        pass
    else:
        if not _holds_big_float(value):
            return value
    try:
        return _loads(content)
    except RecursionError:
        return _loads_deep(content)
    except ValueError as exc:
        raise TransientError("the response body is not valid JSON") from exc


def _loads_deep(content: bytes) -> Any:
    """Decode a deeply nested body in a thread with a large stack and recursion limit."""
    outcome: dict[str, Any] = {}

    def decode() -> None:
        previous = sys.getrecursionlimit()
        sys.setrecursionlimit(max(previous, DEEP_RECURSION_LIMIT))
        try:
            outcome["value"] = _loads(content)
        except RecursionError:
            outcome["error"] = PayloadError("the body is nested too deeply to decode")
        except ValueError as exc:
            outcome["error"] = TransientError("the response body is not valid JSON")
            outcome["error"].__cause__ = exc
        finally:
            sys.setrecursionlimit(previous)

    size = threading.stack_size(DEEP_STACK_BYTES)
    try:
        thread = threading.Thread(target=decode, name="roomsync-deep-json")
        thread.start()
    finally:
        threading.stack_size(size)
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
