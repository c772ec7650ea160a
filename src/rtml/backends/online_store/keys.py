"""Canonical bytes of a key (and a blob check), shared by the backends.

A key is the tuple of a view's join-key values (``(42,)``, ``(42, 1001)``); it is stored as
the compact JSON array of its values: ``b"[42]"``, ``b"[42,1001]"``, ``b'["a:b"]'``. The same
values give the same bytes in every process (ints as ints, numpy scalars as Python ones),
and a Redis key stays readable (``rtml:ecommerce:user_activity:[42]``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from rtml.errors import InvalidInputError

_encoder = msgspec.json.Encoder()


def encode_key(key: Any) -> bytes:
    """``(42,)`` -> ``b"[42]"``. A bare value is taken as a one-value key."""
    values = key if isinstance(key, tuple | list) else (key,)
    try:
        return _encoder.encode([_plain(v) for v in values])
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidInputError(
            f"key {key!r} cannot be stored ({exc}). Fix: use ints, strings, floats or bools as key values"
        ) from None


def as_blob(blob: object, what: object) -> bytes:
    """``blob`` as bytes; anything else is refused (a str would be stored as text)."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise InvalidInputError(f"the state of {what!r} is {type(blob).__name__}, not bytes")
    return bytes(blob)


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    return item() if item is not None and not isinstance(value, int | float | str | bool) else value
