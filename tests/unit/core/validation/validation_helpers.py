"""Helpers of the validation tests: the example's source and schema, events, a fixed clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rtml
from rtml.core.validation import Validator
from rtml.definitions.source import Source

EXAMPLE = Path(rtml.__file__).parent / "examples" / "ecommerce"
NOW = datetime(2019, 10, 15, tzinfo=UTC)


def example_schema() -> dict[str, Any]:
    return json.loads((EXAMPLE / "schemas" / "event.schema.json").read_text())


def example_source(rules: tuple[str, ...] = ("price >= 0",)) -> Source:
    return Source(name="events", schema="schemas/event.schema.json", rules=list(rules))


def base_event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "e-1",
        "event_time": "2019-10-01T00:00:34.123Z",
        "event_type": "view",
        "product_id": 1003461,
        "category_id": 2053013555631882655,
        "category_code": "electronics.smartphone",
        "brand": "xiaomi",
        "price": 489.07,
        "user_id": 520088904,
        "user_session": "4d3b30da-a5e4-49df-b1a8-ba5943f1dd33",
    }
    for key, value in changes.items():
        if value is DROP:
            del event[key]
        else:
            event[key] = value
    return event


DROP = object()


def line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), allow_nan=True).encode()


def make_validator(
    schema: dict[str, Any] | None = None, rules: tuple[str, ...] = ("price >= 0",), **kw: Any
) -> Validator:
    kw.setdefault("now", lambda: NOW)
    return Validator.build(example_source(rules), schema or example_schema(), **kw)
