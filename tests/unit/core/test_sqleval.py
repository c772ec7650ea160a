"""The in-process SQL evaluator agrees with DuckDB on a table of expressions x rows."""

from __future__ import annotations

import math
import operator
from decimal import Decimal
from typing import Any

import duckdb
import pytest

from rtml.core.sqleval import SqlEvalError, compile_check, compile_expression, compile_filter
from rtml.errors import DefinitionError

COLUMNS = "a BIGINT, c BIGINT, b DOUBLE, s VARCHAR, t VARCHAR, f BOOLEAN"
ROWS: list[tuple[Any, ...]] = [
    (3, 2, 2.5, "abc", "12", True),
    (-7, 0, -2.5, "Abd", " 3.5 ", False),
    (0, -3, 0.125, "", "x1", None),
    (None, 5, None, None, None, True),
    (10, None, 5.5, "a_c%", "-4", False),
    (None, None, None, None, None, None),
    (-1, 1, -0.0, "ÄÖü b", "1e2", True),
    (123456789, 7, 1234.5678, "abcabc", "0", False),
]
NAMES = [c.split()[0] for c in COLUMNS.split(", ")]

EXPRESSIONS = [
    # comparisons and three-valued logic
    "a > c", "a >= 3", "a = c", "a <> c", "a != 3", "b < 0", "s = 'abc'", "s > 'abc'", "s <= 'Abd'",
    "f AND a > 0", "f OR a > 0", "NOT f", "NOT (a > c)", "a > 0 AND (b < 0 OR s IS NULL)",
    "(a > 0) = f", "f = TRUE",
    # IS, IN, BETWEEN
    "a IS NULL", "s IS NOT NULL", "f IS TRUE", "f IS NOT FALSE", "f IS FALSE",
    "a IS DISTINCT FROM c", "a IS NOT DISTINCT FROM c",
    "a IN (1, 3, 10)", "a IN (1, 2, NULL)", "a NOT IN (1, NULL)", "a NOT IN (3, 4)", "s IN ('abc', 'x')",
    "a IN (c, 3)", "a BETWEEN c AND 10", "a NOT BETWEEN -1 AND 3", "b BETWEEN -3 AND 1",
    # LIKE
    "s LIKE 'a%'", "s LIKE '_b_'", "s NOT LIKE '%c'", "s ILIKE 'A%'", "s NOT ILIKE '%B%'",
    "s LIKE 'a\\_c\\%' ESCAPE '\\'", "s LIKE '%'",
    # arithmetic
    "a + c * 2 - 1", "b * 2 + a", "a / 2", "a / c", "b / c", "a // 3", "-a // 2", "a % 3", "b % 2", "-a",
    "ABS(b)", "ABS(a - c)", "POWER(b, 2)", "SQRT(ABS(b))", "LN(ABS(b) + 1)", "EXP(b / 10)", "SIGN(b)", "SIGN(a)",
    "ROUND(b)", "ROUND(b, 1)", "ROUND(a, -1)", "ROUND(a)", "FLOOR(b)", "CEIL(b)", "CEIL(a)",
    # strings
    "LOWER(s)", "UPPER(s)", "LENGTH(s)", "s || 'x'", "s || a", "LENGTH(s) + a",
    # conditionals
    "CASE WHEN a > 0 THEN 'pos' WHEN a < 0 THEN 'neg' ELSE 'zero' END",
    "CASE s WHEN 'abc' THEN 1 WHEN 'Abd' THEN 2 END", "CASE WHEN f THEN a END",
    "COALESCE(a, c, -1)", "COALESCE(s, t)", "NULLIF(a, 0)", "NULLIF(s, '')", "IF(f, a, c)", "IF(a > 0, 'y', 'n')",
    "LEAST(a, c)", "GREATEST(a, c, 4)", "LEAST(b, a)", "GREATEST(s, t)",
    # casts
    "CAST(b AS BIGINT)", "CAST(a AS DOUBLE)", "CAST(a AS VARCHAR)", "CAST(b AS VARCHAR)", "CAST(f AS VARCHAR)",
    "TRY_CAST(s AS INT)", "TRY_CAST(t AS DOUBLE)", "TRY_CAST(t AS BIGINT)", "CAST(a AS BOOLEAN)",
]  # fmt: skip


@pytest.fixture(scope="module")
def table() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({COLUMNS})")
    con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(NAMES))})", ROWS)
    return con


def same(ours: Any, theirs: Any) -> bool:
    if isinstance(theirs, Decimal):
        theirs = float(theirs)
    if ours is None or theirs is None or isinstance(theirs, bool) or isinstance(ours, bool):
        return ours is theirs or (ours == theirs and type(ours) is type(theirs))
    if isinstance(theirs, int | float) and isinstance(ours, int | float):
        if math.isnan(theirs) or math.isnan(ours):
            return math.isnan(theirs) and math.isnan(ours)
        return math.isclose(ours, theirs, rel_tol=1e-12, abs_tol=1e-12)
    return bool(ours == theirs) and type(ours) is type(theirs)


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_agrees_with_duckdb(table: duckdb.DuckDBPyConnection, text: str) -> None:
    expected = [r[0] for r in table.execute(f"SELECT {text} FROM t ORDER BY rowid").fetchall()]
    evaluate = compile_expression(text)
    for row, theirs in zip(ROWS, expected, strict=True):
        ours = evaluate(dict(zip(NAMES, row, strict=True)))
        assert same(ours, theirs), f"{text} on {row}: ours {ours!r}, DuckDB {theirs!r}"


def test_check_and_filter_read_null_differently() -> None:
    check, keep = compile_check("price >= 0"), compile_filter("price >= 0")
    assert [check({"price": p}) for p in (1, -1, None)] == [True, False, True]
    assert [keep({"price": p}) for p in (1, -1, None)] == [True, False, False]


@pytest.mark.parametrize(
    ("text", "row"),
    [
        ("a // c", {"a": 1, "c": 0}),
        ("a % c", {"a": 1, "c": 0}),
        ("CAST(s AS INT)", {"s": "abc"}),
        ("CAST(a AS TINYINT)", {"a": 1000}),
        ("s < a", {"s": "x", "a": 1}),
        ("s = a", {"s": "1", "a": 1}),
        ("LOWER(a)", {"a": 1}),
        ("a + s", {"a": 1, "s": "x"}),
    ],
)
def test_evaluation_errors_are_sql_eval_errors(text: str, row: dict[str, Any]) -> None:
    with pytest.raises(SqlEvalError):
        compile_expression(text)(row)


@pytest.mark.parametrize("text", ["CAST(a AS DATE)", "a IS NOT UNKNOWN_THING", "a IN (SELECT 1)"])
def test_what_cannot_be_evaluated_is_refused_when_compiled(text: str) -> None:
    with pytest.raises(DefinitionError):
        compile_expression(text)


def test_columns_can_be_read_from_any_row_type() -> None:
    class Row:
        price = 4.0
        qty = 3

    evaluate = compile_expression("price * qty > 10", column=operator.attrgetter)
    assert evaluate(Row()) is True


def test_timestamps_compare_with_cast_strings() -> None:
    from datetime import UTC, datetime

    evaluate = compile_expression("t >= CAST('2019-10-01 00:00:00' AS TIMESTAMP)")
    assert evaluate({"t": datetime(2019, 10, 1, tzinfo=UTC)}) is True
    assert evaluate({"t": datetime(2019, 9, 30, tzinfo=UTC)}) is False
