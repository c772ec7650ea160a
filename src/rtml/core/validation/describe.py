"""How values and field paths appear in messages: short, JSON-like and always printable."""

from __future__ import annotations

import json
import re
from typing import Any

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHOWN_CHARS = 40


_KINDS: dict[type, str] = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded JSON value."""
    kind = _KINDS.get(type(value))
    if kind is not None:
        return kind
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def show(value: Any) -> str:
    """``value`` for a message: strings quoted and cut to 40 characters, containers by type."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        text = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "..."
        return _printable(json.dumps(text, ensure_ascii=False))
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    return json.dumps(value)


def typed(value: Any) -> str:
    """``string "12.x"``, ``integer 3``, ``null``: the type and the value."""
    kind = json_type(value)
    return kind if value is None or kind in ("array", "object") else f"{kind} {show(value)}"


def child(path: str, key: str) -> str:
    """The path of member ``key`` of the object at ``path`` (``$.price``, ``$["a b"]``)."""
    if _NAME.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{show(key)}]"


def _printable(text: str) -> str:
    """Lone surrogates cannot be written as UTF-8: escape them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
