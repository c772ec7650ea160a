"""``where`` over a batch: the vectorized evaluator agrees with the row-by-row reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rtml.core.aggregation.batch import EventBatch, column
from rtml.core.aggregation.filters import compile_where
from rtml.core.sqleval import SqlEvalError, compile_filter
from rtml.definitions.sql import parse_expression

ROWS: list[dict[str, Any]] = [
    {"event_type": "view", "price": 10.0, "qty": 1, "brand": "a", "flag": True},
    {"event_type": "cart", "price": None, "qty": 2, "brand": None, "flag": False},
    {"event_type": None, "price": 0.5, "qty": None, "brand": "b", "flag": None},
    {"event_type": "purchase", "price": 99.0, "qty": 7, "brand": "a", "flag": True},
    {"event_type": "view", "price": 3.0, "qty": 0, "brand": "c", "flag": False},
]

EXPRESSIONS = [
    "event_type = 'view'",
    "event_type <> 'view'",
    "event_type != 'cart'",
    "price > 1",
    "price >= 3.0 AND qty < 5",
    "price > 1 OR qty = 2",
    "NOT (event_type = 'view')",
    "event_type IS NULL",
    "price IS NOT NULL",
    "event_type IN ('view', 'cart')",
    "event_type IN ('view', NULL)",
    "event_type NOT IN ('view', 'cart')",
    "qty BETWEEN 1 AND 2",
    "qty NOT BETWEEN 1 AND 2",
    "brand < 'b'",
    "brand >= 'b' OR price IS NULL",
    "flag",
    "flag IS TRUE",
    "flag IS FALSE",
    "NOT flag",
    "price > -1",
    "qty = 1.0",
    "missing_column = 1",
    "(event_type = 'view' AND price > 5) OR (event_type = 'purchase' AND NOT qty > 10)",
    # not vectorized: the row-by-row fallback
    "price * 2 > 10",
    "LOWER(brand) = 'a'",
    "COALESCE(qty, 0) = 0",
    "brand LIKE 'a%'",
]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_where_matches_the_reference(text: str) -> None:
    expr = parse_expression(text, obj="test", field="where")
    reference = compile_filter(expr)
    batch = EventBatch.from_rows([{"ts_ms": i, "event_id": str(i), **r} for i, r in enumerate(ROWS)])
    got = compile_where(expr)(batch)
    assert got.dtype == bool
    assert got.tolist() == [reference(r) for r in ROWS]


def test_where_is_cached_per_batch() -> None:
    expr = parse_expression("qty > 1", obj="test", field="where")
    where = compile_where(expr)
    batch = EventBatch.from_rows([{"ts_ms": i, "event_id": str(i), **r} for i, r in enumerate(ROWS)])
    assert where(batch) is where(batch)


def test_type_errors_are_raised_as_the_reference_raises_them() -> None:
    expr = parse_expression("event_type = 1", obj="test", field="where")
    batch = EventBatch.from_rows([{"ts_ms": 0, "event_id": "a", "event_type": "view"}])
    with pytest.raises(SqlEvalError):
        compile_where(expr)(batch)


def test_mixed_type_columns_fall_back_to_rows() -> None:
    expr = parse_expression("qty = 1", obj="test", field="where")
    batch = EventBatch.from_rows(
        [{"ts_ms": 0, "event_id": "a", "qty": 1}, {"ts_ms": 1, "event_id": "b", "qty": None}]
    )
    assert compile_where(expr)(batch).tolist() == [True, False]
    assert column([1, "x", None]).kind == "object"


@pytest.mark.parametrize(
    ("values", "kind", "valid"),
    [
        ([1, 2, 3], "int", None),
        ([1.5, 2, None], "float", [True, True, False]),
        ([1, None], "int", [True, False]),
        ([True, False], "bool", None),
        (["a", None], "str", [True, False]),
        (["a", 1], "object", None),
        ([None, None], "null", [False, False]),
        (np.asarray([1, 2], dtype=np.int32), "int", None),
        (np.asarray(["x", "y"]), "str", None),
    ],
)
def test_column_normalization(values: Any, kind: str, valid: list[bool] | None) -> None:
    col = column(values)
    assert col.kind == kind
    assert (None if col.valid is None else col.valid.tolist()) == valid
    expected = [v.item() if isinstance(v, np.generic) else v for v in values]
    assert col.python() == expected
