"""The body of ``POST /events``: read within a size limit, then split into raw events.

Accepted bodies:

- a JSON array of events: each element is one event, kept as its exact bytes;
- NDJSON (``Content-Type: application/x-ndjson``): one event per line, blank lines skipped;
- a single JSON object: one event.

A body that is none of these (broken JSON, binary) is split into lines and each line is
an event anyway: the validator downstream says what is wrong with each, and nothing a
client sends is dropped on the way.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Literal

import msgspec

from rtml.errors import InvalidInputError
from rtml.services.server.errors import PayloadTooLargeError

BodyFormat = Literal["array", "object", "ndjson", "lines"]
NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])
_ONE = msgspec.json.Decoder(msgspec.Raw)


def _too_large(limit: int, declared: int | None = None) -> PayloadTooLargeError:
    size = f"is {declared:,} bytes (Content-Length)" if declared is not None else "is longer than that"
    return PayloadTooLargeError(
        f"the limit of a request body is {limit:,} bytes (server.ingest.max_body_bytes) and this one "
        f"{size}. Fix: send the events in smaller batches"
    )


async def read_limited(content_length: str | None, chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, refusing (413) a declared ``Content-Length`` over ``limit`` before
    reading, and any body (chunked, or with a false length) once ``limit`` is passed."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise InvalidInputError(f"Content-Length {content_length!r} is not a number") from None
        if declared > limit:
            raise _too_large(limit, declared)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def split_events(body: bytes, content_type: str | None) -> tuple[list[bytes], BodyFormat]:
    """The raw events of ``body`` and the form it was read in. An empty body is a 400."""
    if not body.strip():
        raise InvalidInputError(
            "the request body is empty. Fix: send a JSON array of events, NDJSON, or one JSON object"
        )
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in NDJSON_TYPES:
        return _lines(body), "ndjson"
    text = body.strip()
    if text[:1] == b"[":
        elements = _array(text)
        if elements is not None:
            return elements, "array"
    elif text[:1] == b"{" and _is_one_value(text):
        return [text], "object"
    return _lines(body), "lines"


def _lines(body: bytes) -> list[bytes]:
    lines = (line.removesuffix(b"\r") for line in body.split(b"\n"))
    return [line for line in lines if line.strip()]


def _array(text: bytes) -> list[bytes] | None:
    try:
        return [bytes(element) for element in _ARRAY.decode(text)]
    except msgspec.DecodeError:
        pass
    try:  # JSON that msgspec refuses but Python reads, e.g. NaN: forward it re-encoded
        values = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(values, list):
        return None
    return [json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode() for v in values]


def _is_one_value(text: bytes) -> bool:
    try:
        _ONE.decode(text)
        return True
    except msgspec.DecodeError:
        pass
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True
