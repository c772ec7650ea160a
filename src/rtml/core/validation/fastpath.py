"""The fast path: a source's JSON Schema compiled into a ``msgspec.Struct`` type.

``msgspec.json.Decoder(Struct)`` parses and type-checks an event in one pass in C --
types, ``required``, string ``enum``s (``Literal``), numeric bounds, string lengths and
patterns (``Meta``), ``date-time`` (aware ``datetime``), unknown fields refused -- and
``msgspec.json.Encoder`` writes the normalized event back. Whatever the decoder refuses
goes to the precise path (:mod:`~rtml.core.validation.schema_check`), which finds the
exact reason; so the fast path only has to be *no more lenient* than the precise one,
and its output byte-identical for what it accepts (tests check both).

A schema that uses anything this module does not map (nested objects, arrays,
``multipleOf`` on numbers, ``enum`` of non-strings...) gets no fast path: every event then
takes the precise path, correct but slower.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Union

import msgspec
from sqlglot import exp

from rtml.core.validation.schema_check import ANNOTATIONS, accepts_null, declared_types
from rtml.definitions.sql import SqlExpression

_TIMESTAMP = Annotated[datetime, msgspec.Meta(tz=True)]
_ROOT_KEYS = frozenset({"type", "properties", "required", "additionalProperties"}) | ANNOTATIONS
_FIELD_KEYS = (
    frozenset({"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
               "multipleOf", "minLength", "maxLength", "pattern", "format"})
    | ANNOTATIONS
)  # fmt: skip
_STRING_KEYS = {"minLength": "min_length", "maxLength": "max_length", "pattern": "pattern"}
_NUMBER_KEYS = {"minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt", "exclusiveMaximum": "lt"}
_SCALARS: dict[str, Any] = {"boolean": bool, "null": None}


@dataclass(frozen=True)
class FastDecoder:
    """A compiled schema: decode with ``decode``, write back with ``encode``."""

    decode: Callable[[Any], Any]
    encode: Callable[[Any], bytes]
    attribute: Mapping[str, str]  # field name in the event -> attribute of the struct
    maybe_unset: frozenset[str]  # optional fields that read as msgspec.UNSET when absent
    other_times: tuple[str, ...]  # attributes of date-time fields besides the timestamp
    absorbed_rules: frozenset[int]  # indices of the rules the struct's bounds enforce

    def getter(self, column: str) -> Callable[[Any], Any]:
        """Read ``column`` from a decoded struct; an absent optional field reads as None."""
        read = operator.attrgetter(self.attribute[column])
        if column not in self.maybe_unset:
            return read
        unset = msgspec.UNSET

        def read_or_none(struct: Any) -> Any:
            value = read(struct)
            return None if value is unset else value

        return read_or_none


def build_fast_decoder(
    schema: Mapping[str, Any],
    *,
    timestamp_field: str,
    id_field: str,
    rules: Sequence[SqlExpression] = (),
) -> FastDecoder | None:
    """The fast decoder of ``schema``, or None when the schema needs the precise path only.

    Rules of the form ``column <op> number`` (``price >= 0``) on a numeric field become
    bounds of that field in the struct, checked in C; their indices are in
    ``FastDecoder.absorbed_rules`` (the other rules are evaluated after decoding).
    """
    if not set(schema) <= _ROOT_KEYS or schema.get("type") != "object":
        return None
    props = schema.get("properties")
    required = schema.get("required", [])
    if not isinstance(props, Mapping) or not isinstance(required, list):
        return None
    if timestamp_field not in props or id_field not in props or not set(required) <= set(props):
        return None
    fields: list[tuple[str, Any, Any]] = []
    attribute: dict[str, str] = {}
    maybe_unset: set[str] = set()
    other_times: list[str] = []
    bounds, absorbed = _rule_bounds(rules, props)
    for i, (name, prop) in enumerate(props.items()):
        try:
            kind = (
                _timestamp_type(prop) if name == timestamp_field else _field_type(prop, bounds.get(name, []))
            )
        except (TypeError, ValueError, re.error):  # bounds or patterns msgspec cannot take
            return None
        if kind is None:
            return None
        attr = f"f{i}"
        attribute[name] = attr
        if name != timestamp_field and prop.get("format") == "date-time":
            other_times.append(attr)
        if name in required or name in (timestamp_field, id_field):
            fields.append((attr, kind, msgspec.field(name=name)))
        elif accepts_null(prop):
            fields.append((attr, kind, msgspec.field(default=None, name=name)))
        else:
            maybe_unset.add(name)
            optional = Union[kind, msgspec.UnsetType]  # type: ignore[valid-type]  # noqa: UP007
            fields.append((attr, optional, msgspec.field(default=msgspec.UNSET, name=name)))
    try:
        struct = msgspec.defstruct("Event", fields, kw_only=True, forbid_unknown_fields=True, gc=False)
        decoder = msgspec.json.Decoder(struct)
    except (TypeError, ValueError, re.error):  # a combination msgspec cannot express
        return None
    return FastDecoder(
        decode=decoder.decode,
        encode=msgspec.json.Encoder().encode,
        attribute=attribute,
        maybe_unset=frozenset(maybe_unset),
        other_times=tuple(other_times),
        absorbed_rules=absorbed,
    )


def _timestamp_type(prop: Any) -> Any:
    if not isinstance(prop, Mapping) or set(prop) - {"type", "format"} - ANNOTATIONS:
        return None
    return _TIMESTAMP if "string" in declared_types(prop) else None


def _field_type(prop: Any, extra_bounds: list[tuple[str, int | float]]) -> Any:
    if not isinstance(prop, Mapping) or "type" not in prop or not set(prop) <= _FIELD_KEYS:
        return None
    types = declared_types(prop)
    if "enum" in prop or "const" in prop:
        return _enum_type(prop, types)
    members = []
    for name in types:
        member = _member_type(name, prop, extra_bounds)
        if member is _UNSUPPORTED:
            return None
        members.append(member)
    return Union[tuple(members)] if len(members) > 1 else members[0]  # noqa: UP007


_UNSUPPORTED = object()


def _member_type(name: str, prop: Mapping[str, Any], extra_bounds: list[tuple[str, int | float]]) -> Any:
    if name in _SCALARS:
        return _SCALARS[name]
    if name == "string":
        if prop.get("format") == "date-time":
            return _TIMESTAMP if not set(prop) & set(_STRING_KEYS) else _UNSUPPORTED
        text = {_STRING_KEYS[k]: prop[k] for k in _STRING_KEYS if k in prop}
        return Annotated[str, msgspec.Meta(**text)] if text else str
    if name in ("integer", "number"):
        bounds = [(_NUMBER_KEYS[k], prop[k]) for k in _NUMBER_KEYS if k in prop]
        if any(isinstance(v, bool) or not isinstance(v, int | float) for _, v in bounds):
            return _UNSUPPORTED
        meta: dict[str, Any] = _tightest([*bounds, *extra_bounds], integer=name == "integer")
        if "multipleOf" in prop:
            if name == "number" or not isinstance(prop["multipleOf"], int):
                return _UNSUPPORTED
            meta["multiple_of"] = prop["multipleOf"]
        base = int if name == "integer" else float
        return Annotated[base, msgspec.Meta(**meta)] if meta else base
    return _UNSUPPORTED


def _enum_type(prop: Mapping[str, Any], types: tuple[str, ...]) -> Any:
    values = prop["enum"] if "enum" in prop else [prop.get("const")]
    if not isinstance(values, list) or set(prop) - {"type", "enum", "const"} - ANNOTATIONS:
        return None
    strings = tuple(v for v in values if isinstance(v, str))
    has_null = None in values and "null" in types
    if not strings or "string" not in types or len(strings) + (None in values) != len(values):
        return None
    literal = Literal[strings]  # type: ignore[valid-type]
    return Union[literal, None] if has_null else literal  # noqa: UP007


_COMPARISONS: dict[type[exp.Expression], str] = {exp.GTE: "ge", exp.GT: "gt", exp.LTE: "le", exp.LT: "lt"}
_FLIPPED = {"ge": "le", "gt": "lt", "le": "ge", "lt": "gt"}


def _rule_bounds(
    rules: Sequence[SqlExpression], props: Mapping[str, Any]
) -> tuple[dict[str, list[tuple[str, int | float]]], frozenset[int]]:
    """Bounds (``ge``/``gt``/``le``/``lt``) per numeric field from rules ``column <op> number``."""
    bounds: dict[str, list[tuple[str, int | float]]] = {}
    absorbed = set()
    for index, rule in enumerate(rules):
        found = _comparison_with_number(rule.tree)
        if found is None:
            continue
        column, op, number = found
        prop = props.get(column)
        if not isinstance(prop, Mapping) or "type" not in prop or "enum" in prop or "const" in prop:
            continue
        numeric = set(declared_types(prop)) - {"null"}
        if numeric and numeric <= {"integer", "number"}:
            bounds.setdefault(column, []).append((op, number))
            absorbed.add(index)
    return bounds, frozenset(absorbed)


def _comparison_with_number(tree: exp.Expression) -> tuple[str, str, int | float] | None:
    op = _COMPARISONS.get(type(tree))
    if op is None:
        return None
    left, right = tree.this, tree.expression
    if isinstance(left, exp.Column) and (number := _number(right)) is not None:
        return left.name, op, number
    if isinstance(right, exp.Column) and (number := _number(left)) is not None:
        return right.name, _FLIPPED[op], number
    return None


def _number(node: exp.Expression) -> int | float | None:
    sign = 1
    if isinstance(node, exp.Neg):
        sign, node = -1, node.this
    if not isinstance(node, exp.Literal) or node.is_string:
        return None
    try:
        return sign * int(node.this)
    except ValueError:
        value = sign * float(node.this)
        return value if math.isfinite(value) else None


def _tightest(bounds: list[tuple[str, int | float]], *, integer: bool) -> dict[str, int | float]:
    """The strictest lower and upper bound of ``bounds`` as msgspec ``Meta`` keywords
    (``Meta`` takes one of each; an integer field gets exact integer bounds)."""
    lows = [(k, v) for k, v in bounds if k in ("ge", "gt")]
    highs = [(k, v) for k, v in bounds if k in ("le", "lt")]
    if integer:
        lows = [("ge", math.ceil(v) if k == "ge" else math.floor(v) + 1) for k, v in lows]
        highs = [("le", math.floor(v) if k == "le" else math.ceil(v) - 1) for k, v in highs]
    meta: dict[str, int | float] = {}
    if lows:
        key, value = max(lows, key=lambda kv: (kv[1], kv[0] == "gt"))
        meta[key] = value
    if highs:
        key, value = min(highs, key=lambda kv: (kv[1], kv[0] != "lt"))
        meta[key] = value
    return meta
