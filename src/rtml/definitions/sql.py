"""SQL expressions in definitions: parsed and checked once, run everywhere.

``where`` filters, label conditions, source rules and on-demand features are SQL
*expressions* (no SELECT, no aggregates, no sub-queries). They are parsed here with
sqlglot, their column references are checked against what is in scope, and the same
tree is rendered for DuckDB, PostgreSQL and Spark (``SqlExpression.render``) or
evaluated in-process by the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from rtml.errors import DefinitionError

# Functions every engine (DuckDB, PostgreSQL, Spark, the in-process evaluator) runs alike.
ALLOWED_FUNCTIONS = frozenset(
    {
        "ABS", "CEIL", "FLOOR", "ROUND", "SQRT", "LN", "EXP", "POWER", "SIGN",
        "LEAST", "GREATEST", "COALESCE", "NULLIF", "LOWER", "UPPER", "LENGTH",
        "IF", "CAST", "TRY_CAST",
    }
)  # fmt: skip
_FORBIDDEN = (exp.Select, exp.Subquery, exp.AggFunc, exp.Window, exp.Star, exp.Placeholder)
_DIALECT = "duckdb"  # the dialect users write; rendering targets others


@dataclass(frozen=True)
class SqlExpression:
    """A checked SQL expression and the columns it reads."""

    text: str
    tree: Any  # a sqlglot expression tree
    columns: frozenset[str]

    def render(self, dialect: str = _DIALECT) -> str:
        """The expression in ``dialect`` ("duckdb", "postgres", "spark", ...)."""
        return self.tree.sql(dialect=dialect)


def parse_expression(text: object, *, obj: str, field: str) -> SqlExpression:
    """Parse ``text`` as one SQL expression, or raise a DefinitionError saying why."""
    if not isinstance(text, str) or not text.strip():
        raise DefinitionError(
            f"expected a SQL expression string, got {text!r}",
            obj=obj,
            field=field,
            fix="write e.g. \"event_type = 'view'\"",
        )
    try:
        tree = sqlglot.parse_one(text, dialect=_DIALECT, into=exp.Condition)
    except (ParseError, ValueError) as exc:
        first = str(exc).splitlines()[0]
        raise DefinitionError(
            f"{text!r} is not a valid SQL expression ({first})",
            obj=obj,
            field=field,
            fix='write one SQL expression over the columns, e.g. "price >= 0 AND brand IS NOT NULL"',
        ) from None
    node: Any
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN):
            raise DefinitionError(
                f"{text!r} uses {node.key.upper()}, which is not allowed here",
                obj=obj,
                field=field,
                fix="use a plain per-row expression: no SELECT, aggregate, window or '*'",
            )
        if _is_function_call(node):
            name = node.name.upper() if isinstance(node, exp.Anonymous) else node.sql_name()
            if isinstance(node, exp.Anonymous) or name not in ALLOWED_FUNCTIONS:
                allowed = ", ".join(sorted(ALLOWED_FUNCTIONS))
                raise DefinitionError(
                    f"{text!r} calls {name}(), which not every engine runs alike",
                    obj=obj,
                    field=field,
                    fix=f"use one of {allowed}",
                )
    columns = frozenset(col.name for col in tree.find_all(exp.Column))
    return SqlExpression(text=text, tree=tree, columns=columns)


def _is_function_call(node: Any) -> bool:
    """sqlglot models operators (AND, =, IN, BETWEEN, LIKE, CASE...) as Func subclasses too;
    only named calls such as ``ABS(x)`` are checked against the allowed list."""
    if isinstance(node, exp.Anonymous):
        return True
    operators = (exp.Binary, exp.Unary, exp.Predicate, exp.Case, exp.Cast, exp.TryCast)
    return isinstance(node, exp.Func) and not isinstance(node, operators)


def check_columns(expr: SqlExpression, available: set[str] | frozenset[str], *, obj: str, field: str) -> None:
    """Every column the expression reads must be in ``available``."""
    unknown = sorted(expr.columns - set(available))
    if unknown:
        raise DefinitionError(
            f"{expr.text!r} reads unknown column(s) {', '.join(unknown)}",
            obj=obj,
            field=field,
            fix=f"use only {', '.join(sorted(available))}",
        )
