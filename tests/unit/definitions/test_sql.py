from __future__ import annotations

import pytest

from rtml.definitions.sql import parse_expression
from rtml.errors import DefinitionError


@pytest.mark.parametrize(
    ("text", "columns", "postgres"),
    [
        ("event_type = 'view'", {"event_type"}, "event_type = 'view'"),
        (
            "price >= 0 AND brand IS NOT NULL",
            {"price", "brand"},
            "price >= 0 AND NOT brand IS NULL",
        ),
        ("a / NULLIF(b, 0)", {"a", "b"}, "CAST(a AS DOUBLE PRECISION) / NULLIF(b, 0)"),
        ("IF(a > 1, 1, 0)", {"a"}, "CASE WHEN a > 1 THEN 1 ELSE 0 END"),
        ("x IN (1, 2) OR y BETWEEN 1 AND 2", {"x", "y"}, "x IN (1, 2) OR y BETWEEN 1 AND 2"),
    ],
)
def test_parse_and_render(text: str, columns: set[str], postgres: str) -> None:
    expr = parse_expression(text, obj="o", field="f")
    assert expr.columns == columns
    assert expr.render("postgres") == postgres


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("count(*) > 1", "uses COUNT"),
        ("(SELECT 1) = 1", "SUBQUERY"),
        ("now() > 1", "calls NOW()"),
        ("x = = 1", "not a valid SQL expression"),
        ("", "expected a SQL expression"),
    ],
)
def test_rejects(text: str, fragment: str) -> None:
    with pytest.raises(DefinitionError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_expression(text, obj="o", field="f")
