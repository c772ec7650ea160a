"""``where`` filters over a whole :class:`~.batch.EventBatch` at once, with SQL semantics.

:func:`compile_where` turns a checked :class:`~rtml.definitions.sql.SqlExpression` into a
function ``batch -> bool mask`` (``True`` only where the expression is TRUE). The common
forms -- comparisons, ``AND``/``OR``/``NOT``, ``IS [NOT] NULL``, ``IN (...)``, ``BETWEEN``
over columns and constants -- run as numpy operations with three-valued logic. Anything
else, and any batch whose column types the vectorized path does not handle (a string
compared with a number, mixed types), is evaluated row by row by
:func:`rtml.core.sqleval.compile_filter`, the reference, so results and errors are the
same either way.

Why numpy and not DuckDB: on a 10,000-event batch ``event_type = 'view'`` takes about
0.03-0.15 ms here, 1.3 ms through DuckDB (query overhead) and 2.3 ms row by row.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlglot import exp

from rtml.core.aggregation.batch import NUMERIC, EventBatch
from rtml.core.sqleval import compile_filter
from rtml.definitions.sql import SqlExpression

Mask = Callable[[EventBatch], np.ndarray]


class _Fallback(Exception):
    """This batch (or expression) needs the row-by-row evaluator."""


@dataclass(frozen=True)
class _Val:
    """A vectorized SQL value: data, NULL mask and kind ("num", "str", "bool")."""

    data: np.ndarray | Any  # an array, or a Python scalar for a constant
    null: np.ndarray | bool
    kind: str


@dataclass(frozen=True)
class _Bool:
    """A three-valued boolean: TRUE where ``true``, NULL where ``null``, FALSE elsewhere."""

    true: np.ndarray
    null: np.ndarray

    @property
    def false(self) -> np.ndarray:
        return ~(self.true | self.null)


_CMP: dict[type[exp.Expression], Callable[[Any, Any], Any]] = {
    exp.EQ: operator.eq,
    exp.NEQ: operator.ne,
    exp.GT: operator.gt,
    exp.GTE: operator.ge,
    exp.LT: operator.lt,
    exp.LTE: operator.le,
}


def compile_where(expr: SqlExpression) -> Mask:
    """``batch -> mask``: TRUE rows of ``expr`` (cached per batch by the expression text)."""
    row_filter = compile_filter(expr)

    def rowwise(batch: EventBatch) -> np.ndarray:
        return np.fromiter((row_filter(r) for r in batch.rows()), dtype=bool, count=len(batch))

    tree = expr.tree
    try:
        _check(tree)
    except _Fallback:
        return lambda batch: batch.mask(expr.text, rowwise)

    def vectorized(batch: EventBatch) -> np.ndarray:
        try:
            result = _Eval(batch).boolean(tree)
        except _Fallback:
            return rowwise(batch)
        return result.true & ~result.null

    return lambda batch: batch.mask(expr.text, vectorized)


def _check(node: exp.Expression) -> None:
    """Raise ``_Fallback`` for any node the vectorized evaluator does not handle."""
    allowed: tuple[type[exp.Expression], ...] = (
        exp.Column, exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.And, exp.Or, exp.Not,
        exp.Is, exp.In, exp.Between, exp.Identifier, exp.Neg, *_CMP,
    )  # fmt: skip
    for sub in node.walk():
        if not isinstance(sub, allowed):
            raise _Fallback(sub.key)
        if isinstance(sub, exp.In) and any(not _is_const(e) for e in sub.expressions):
            raise _Fallback("IN with non-constant values")
        if isinstance(sub, exp.In) and (sub.args.get("query") or sub.args.get("unnest")):
            raise _Fallback("IN subquery")


def _is_const(node: exp.Expression) -> bool:
    return isinstance(node, exp.Literal | exp.Boolean | exp.Null)


class _Eval:
    def __init__(self, batch: EventBatch) -> None:
        self.batch = batch
        self.n = len(batch)

    def boolean(self, node: exp.Expression) -> _Bool:
        if isinstance(node, exp.Paren):
            return self.boolean(node.this)
        if isinstance(node, exp.And | exp.Or):
            a, b = self.boolean(node.this), self.boolean(node.expression)
            if isinstance(node, exp.And):
                true, false = a.true & b.true, a.false | b.false
            else:
                true, false = a.true | b.true, a.false & b.false
            return _Bool(true, ~(true | false))
        if isinstance(node, exp.Not):
            inner = self.boolean(node.this)
            return _Bool(inner.false, inner.null)
        if isinstance(node, exp.Is):
            return self._is(node)
        if type(node) in _CMP:
            return self._compare(self.value(node.this), self.value(node.expression), _CMP[type(node)])
        if isinstance(node, exp.In):
            return self._in(node)
        if isinstance(node, exp.Between):
            value = self.value(node.this)
            low = self._compare(value, self.value(node.args["low"]), operator.ge)
            high = self._compare(value, self.value(node.args["high"]), operator.le)
            true, false = low.true & high.true, low.false | high.false
            return _Bool(true, ~(true | false))
        value = self.value(node)
        if value.kind != "bool":
            raise _Fallback("a non-boolean used as a condition")
        return self._as_bool(value)

    def value(self, node: exp.Expression) -> _Val:
        if isinstance(node, exp.Paren):
            return self.value(node.this)
        if isinstance(node, exp.Column):
            col = self.batch.col(node.name)
            null = np.zeros(self.n, bool) if col.valid is None else ~col.valid
            if col.kind == "null":
                return _Val(col.values, null, "null")
            if col.kind == "bool":
                return _Val(col.values, null, "bool")
            if col.kind in NUMERIC:
                return _Val(col.values, null, "num")
            if col.kind == "str":
                return _Val(col.values, null, "str")
            raise _Fallback("mixed column types")
        if isinstance(node, exp.Null):
            return _Val(None, True, "null")
        if isinstance(node, exp.Neg):
            inner = self.value(node.this)
            if inner.kind != "num" or isinstance(inner.data, np.ndarray):
                raise _Fallback("negation of a column")
            return _Val(-inner.data, False, "num")
        if isinstance(node, exp.Boolean):
            return _Val(node.this is True, False, "bool")
        if isinstance(node, exp.Literal):
            if node.is_string:
                return _Val(node.this, False, "str")
            try:
                return _Val(int(node.this), False, "num")
            except ValueError:
                return _Val(float(node.this), False, "num")
        raise _Fallback(node.key)

    def _as_bool(self, value: _Val) -> _Bool:
        null = np.broadcast_to(np.asarray(value.null, dtype=bool), (self.n,))
        true = np.broadcast_to(np.asarray(value.data, dtype=bool), (self.n,)) & ~null
        return _Bool(true, null)

    def _compare(self, a: _Val, b: _Val, op: Callable[[Any, Any], Any]) -> _Bool:
        null = np.broadcast_to(np.asarray(a.null, dtype=bool) | np.asarray(b.null, dtype=bool), (self.n,))
        if a.kind == "null" or b.kind == "null":
            return _Bool(np.zeros(self.n, bool), np.ones(self.n, bool))
        numeric = {"num", "bool"}
        if not (a.kind == b.kind == "str" or (a.kind in numeric and b.kind in numeric)):
            raise _Fallback("comparison across types")
        left, right = a.data, b.data
        if a.kind == "str" and op not in (operator.eq, operator.ne):
            # ordering compares str with str only: put a string where the value is NULL
            left = np.where(null, "", left) if isinstance(left, np.ndarray) else left
            right = np.where(null, "", right) if isinstance(right, np.ndarray) else right
        result = np.broadcast_to(np.asarray(op(left, right), dtype=bool), (self.n,))
        return _Bool(result & ~null, null)

    def _is(self, node: exp.Is) -> _Bool:
        target = node.expression
        if isinstance(target, exp.Null):
            value = self.value(node.this)
            true = np.broadcast_to(np.asarray(value.null, dtype=bool), (self.n,)).copy()
            return _Bool(true, np.zeros(self.n, bool))
        if isinstance(target, exp.Boolean):
            inner = self.boolean(node.this)
            true = inner.true if target.this is True else inner.false
            return _Bool(true.copy(), np.zeros(self.n, bool))
        raise _Fallback("IS with something else than NULL/TRUE/FALSE")

    def _in(self, node: exp.In) -> _Bool:
        value = self.value(node.this)
        consts = [self.value(e) for e in node.expressions]
        has_null = any(c.kind == "null" for c in consts)
        true = np.zeros(self.n, bool)
        null = np.broadcast_to(np.asarray(value.null, dtype=bool), (self.n,))
        for const in consts:
            if const.kind != "null":
                true |= self._compare(value, const, operator.eq).true
        unknown = null | (~true if has_null else np.zeros(self.n, bool))
        return _Bool(true & ~null, unknown & ~(true & ~null))
