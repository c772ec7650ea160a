"""In-process evaluation of rtml's SQL expressions, with SQL ``NULL`` semantics.

A checked :class:`~rtml.definitions.sql.SqlExpression` (a sqlglot tree) is compiled once
into a tree of Python closures; calling the result on a row evaluates it. Rows are
whatever ``column(name)`` knows how to read: by default a mapping (``row.get(name)``),
the validator passes ``operator.attrgetter`` for its decoded structs.

Semantics follow DuckDB, the dialect users write (``tests/unit/core/test_sqleval.py``
holds the evaluator against DuckDB on a table of expressions and rows):

* ``NULL`` propagates through operators and functions; ``AND``/``OR``/``NOT`` are
  three-valued; ``x IN (..., NULL)`` is ``NULL`` when nothing matches; ``LEAST``/``GREATEST``
  skip ``NULL``s; ``COALESCE``, ``NULLIF``, ``IF``, ``CASE`` as in SQL.
* ``/`` is true division (``1 / 0`` is ``inf``, ``0 / 0`` is ``NaN``); ``//`` and ``%``
  truncate toward zero and raise on a zero divisor; ``ROUND`` rounds half away from zero.
* Integers do not overflow (Python ints); ``DECIMAL`` is evaluated as a double.

Two ways to read a result: :func:`compile_check` (a ``CHECK`` constraint: passes unless
the value is ``FALSE``, so ``NULL`` passes -- used for source rules) and
:func:`compile_filter` (a ``WHERE`` clause: keeps a row only when the value is ``TRUE``).
Evaluation errors (a type mismatch, ``1 // 0``, a failed ``CAST``) raise
:class:`SqlEvalError`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from sqlglot import exp

from rtml.core import sqlfuncs as f
from rtml.core.sqlfuncs import SqlEvalError
from rtml.definitions.sql import SqlExpression, parse_expression
from rtml.errors import DefinitionError

__all__ = [
    "SqlEvalError",
    "compile_check",
    "compile_expression",
    "compile_filter",
    "dict_column",
]

Fn = Callable[[Any], Any]
ColumnAccess = Callable[[str], Fn]
_ABSENT = object()  # "not a constant" marker for constant folding


def dict_column(name: str) -> Fn:
    """Read column ``name`` from a mapping row; an absent key reads as ``NULL``."""

    def get(row: Any) -> Any:
        return row.get(name)

    return get


def compile_expression(
    expr: SqlExpression | exp.Expression | str, *, column: ColumnAccess = dict_column, raw: bool = False
) -> Fn:
    """A function ``row -> value`` (``None`` is SQL ``NULL``).

    With ``raw=True`` the function may raise ``TypeError``/``ValueError``/``ArithmeticError``
    as well as :class:`SqlEvalError` (one call frame less, for hot loops that catch
    ``Exception`` anyway); otherwise every failure is a :class:`SqlEvalError`.
    """
    tree = _tree(expr)
    fn = _Compiler(column).compile(tree)
    if raw:
        return fn
    text = tree.sql(dialect="duckdb")

    def evaluate(row: Any) -> Any:
        try:
            return fn(row)
        except SqlEvalError:
            raise
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise SqlEvalError(f"{text!r} cannot be evaluated: {exc}") from None

    return evaluate


def compile_check(
    expr: SqlExpression | exp.Expression | str, *, column: ColumnAccess = dict_column
) -> Callable[[Any], bool]:
    """``CHECK`` semantics: ``True`` unless the expression is ``FALSE`` (``NULL`` passes)."""
    fn = compile_expression(expr, column=column)
    return lambda row: fn(row) is not False


def compile_filter(
    expr: SqlExpression | exp.Expression | str, *, column: ColumnAccess = dict_column
) -> Callable[[Any], bool]:
    """``WHERE`` semantics: ``True`` only when the expression is ``TRUE``."""
    fn = compile_expression(expr, column=column)
    return lambda row: fn(row) is True


def _tree(expr: SqlExpression | exp.Expression | str) -> exp.Expression:
    if isinstance(expr, SqlExpression):
        return expr.tree
    if isinstance(expr, str):
        return parse_expression(expr, obj="expression", field="sql").tree
    return expr


_COMPARE: dict[type[exp.Expression], Callable[[Any, Any], Any]] = {
    exp.EQ: f.eq,
    exp.NEQ: f.ne,
    exp.GT: operator.gt,
    exp.GTE: operator.ge,
    exp.LT: operator.lt,
    exp.LTE: operator.le,
}
_ARITHMETIC: dict[type[exp.Expression], Callable[[Any, Any], Any]] = {
    exp.Add: f.add,
    exp.Sub: f.sub,
    exp.Mul: f.mul,
    exp.Div: f.div,
    exp.IntDiv: f.intdiv,
    exp.Mod: f.mod,
    exp.Pow: f.power,
    exp.DPipe: f.concat,
}
_UNARY: dict[type[exp.Expression], Callable[[Any], Any]] = {
    exp.Neg: f.neg,
    exp.Abs: f.abs_,
    exp.Lower: f.lower,
    exp.Upper: f.upper,
    exp.Length: f.length,
    exp.Ceil: f.ceil,
    exp.Floor: f.floor,
    exp.Sqrt: f.sqrt,
    exp.Ln: f.ln,
    exp.Exp: f.exp_,
    exp.Sign: f.sign,
}


class _Compiler:
    def __init__(self, column: ColumnAccess) -> None:
        self.column = column

    def compile(self, node: exp.Expression) -> Fn:
        const = _constant(node)
        if const is not _ABSENT:
            return lambda row: const
        kind = type(node)
        if kind in _COMPARE:
            return self._binary(node, _COMPARE[kind])
        if kind in _ARITHMETIC:
            return self._binary(node, _ARITHMETIC[kind])
        if kind in _UNARY:
            return self._unary(node.this, _UNARY[kind])
        handler = getattr(self, f"_{node.key}", None)
        if handler is None:
            raise DefinitionError(
                f"{node.sql(dialect='duckdb')!r} ({node.key.upper()}) cannot be evaluated in-process",
                fix="use comparisons, AND/OR/NOT, IS NULL, IN, BETWEEN, LIKE, arithmetic, CASE "
                "or the functions listed in docs/validation.md",
            )
        fn: Fn = handler(node)
        return fn

    def _binary(self, node: exp.Expression, op: Callable[[Any, Any], Any]) -> Fn:
        left, right = self.compile(node.this), self.compile(node.expression)
        rc = _constant(node.expression)
        if rc is None or _constant(node.this) is None:
            return lambda row: None
        if rc is not _ABSENT:

            def with_constant(row: Any) -> Any:
                a = left(row)
                return None if a is None else op(a, rc)

            return with_constant

        def binary(row: Any) -> Any:
            a = left(row)
            if a is None:
                return None
            b = right(row)
            return None if b is None else op(a, b)

        return binary

    def _unary(self, arg: exp.Expression, op: Callable[[Any], Any]) -> Fn:
        inner = self.compile(arg)

        def unary(row: Any) -> Any:
            a = inner(row)
            return None if a is None else op(a)

        return unary

    def _column(self, node: exp.Column) -> Fn:
        return self.column(node.name)

    def _paren(self, node: exp.Paren) -> Fn:
        return self.compile(node.this)

    def _and(self, node: exp.And) -> Fn:
        left, right = self.compile(node.this), self.compile(node.expression)
        return lambda row: f.and_(left(row), right, row)

    def _or(self, node: exp.Or) -> Fn:
        left, right = self.compile(node.this), self.compile(node.expression)
        return lambda row: f.or_(left(row), right, row)

    def _not(self, node: exp.Not) -> Fn:
        inner = self.compile(node.this)

        def not_(row: Any) -> Any:
            a = inner(row)
            return None if a is None else not f.truth(a)

        return not_

    def _is(self, node: exp.Is) -> Fn:
        inner, target = self.compile(node.this), node.expression
        if isinstance(target, exp.Null):
            return lambda row: inner(row) is None
        if isinstance(target, exp.Boolean):
            wanted = target.this is True
            return lambda row: inner(row) is wanted
        raise DefinitionError(f"IS {target.sql()} is not supported", fix="use IS [NOT] NULL/TRUE/FALSE")

    def _nullsafeeq(self, node: exp.NullSafeEQ) -> Fn:
        left, right = self.compile(node.this), self.compile(node.expression)
        return lambda row: f.not_distinct(left(row), right(row))

    def _nullsafeneq(self, node: exp.NullSafeNEQ) -> Fn:
        left, right = self.compile(node.this), self.compile(node.expression)
        return lambda row: not f.not_distinct(left(row), right(row))

    def _in(self, node: exp.In) -> Fn:
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            raise DefinitionError("IN takes a list of values here", fix="write x IN (1, 2, 3)")
        inner = self.compile(node.this)
        consts = [_constant(e) for e in node.expressions]
        if all(c is not _ABSENT for c in consts):
            has_null = any(c is None for c in consts)
            values = tuple(c for c in consts if c is not None)
            return lambda row: f.in_constants(inner(row), values, has_null)
        items = [self.compile(e) for e in node.expressions]
        return lambda row: f.in_values(inner(row), [g(row) for g in items])

    def _between(self, node: exp.Between) -> Fn:
        inner, low, high = (self.compile(node.args[k]) for k in ("this", "low", "high"))
        return lambda row: f.between(inner(row), low(row), high(row))

    def _like(self, node: exp.Like, escape: str | None = None) -> Fn:
        return self._pattern(node, escape, insensitive=False)

    def _ilike(self, node: exp.ILike, escape: str | None = None) -> Fn:
        return self._pattern(node, escape, insensitive=True)

    def _escape(self, node: exp.Escape) -> Fn:
        esc = _constant(node.expression)
        if not isinstance(esc, str) or len(esc) != 1:
            raise DefinitionError("ESCAPE takes a one-character string", fix="write ESCAPE '\\'")
        return self._pattern(node.this, esc, insensitive=isinstance(node.this, exp.ILike))

    def _pattern(self, node: exp.Expression, escape: str | None, *, insensitive: bool) -> Fn:
        inner, pattern = self.compile(node.this), self.compile(node.expression)
        negate = bool(node.args.get("negate"))

        def like(row: Any) -> Any:
            a, p = inner(row), pattern(row)
            if a is None or p is None:
                return None
            return f.like(a, p, escape, insensitive) is not negate

        return like

    def _case(self, node: exp.Case) -> Fn:
        subject = self.compile(node.this) if node.this is not None else None
        branches = [(self.compile(b.this), self.compile(b.args["true"])) for b in node.args["ifs"]]
        default = node.args.get("default")
        otherwise = self.compile(default) if default is not None else (lambda row: None)

        def case(row: Any) -> Any:
            value = subject(row) if subject is not None else None
            for when, then in branches:
                w = when(row)
                hit = (w is not None and value is not None and w == value) if subject else w is True
                if hit:
                    return then(row)
            return otherwise(row)

        return case

    def _if(self, node: exp.If) -> Fn:
        cond, then = self.compile(node.this), self.compile(node.args["true"])
        other = node.args.get("false")
        otherwise = self.compile(other) if other is not None else (lambda row: None)
        return lambda row: then(row) if cond(row) is True else otherwise(row)

    def _coalesce(self, node: exp.Coalesce) -> Fn:
        items = [self.compile(e) for e in [node.this, *node.expressions]]
        return lambda row: next((v for v in (g(row) for g in items) if v is not None), None)

    def _nullif(self, node: exp.Nullif) -> Fn:
        left, right = self.compile(node.this), self.compile(node.expression)
        return lambda row: f.nullif(left(row), right(row))

    def _least(self, node: exp.Least) -> Fn:
        items = [self.compile(e) for e in [node.this, *node.expressions]]
        return lambda row: f.extreme(min, [g(row) for g in items])

    def _greatest(self, node: exp.Greatest) -> Fn:
        items = [self.compile(e) for e in [node.this, *node.expressions]]
        return lambda row: f.extreme(max, [g(row) for g in items])

    def _round(self, node: exp.Round) -> Fn:
        inner = self.compile(node.this)
        decimals = node.args.get("decimals")
        digits = self.compile(decimals) if decimals is not None else (lambda row: 0)

        def round_(row: Any) -> Any:
            a, d = inner(row), digits(row)
            return None if a is None or d is None else f.round_half_away(a, d)

        return round_

    def _cast(self, node: exp.Cast) -> Fn:
        inner = self.compile(node.this)
        convert = f.caster(node.to.this.name, safe=isinstance(node, exp.TryCast))
        return lambda row: convert(inner(row))

    _trycast = _cast


def _constant(node: exp.Expression) -> Any:
    """The value of a literal node, or ``_ABSENT`` when ``node`` is not a literal."""
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return node.this is True
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        try:
            return int(text)
        except ValueError:
            return float(text)
    if isinstance(node, exp.Paren):
        return _constant(node.this)
    if isinstance(node, exp.Neg):
        inner = _constant(node.this)
        if isinstance(inner, int | float) and not isinstance(inner, bool):
            return -inner
    return _ABSENT
