"""The precise JSON Schema check: the subset sources use, compiled once into closures.

A compiled check takes a decoded JSON value and its path (``$.price``) and returns the
*normalized* value, or raises :class:`Failure` naming the first thing wrong. Keywords:
``type`` (one or a list, ``null`` for nullable), ``enum``, ``const``, ``minimum``,
``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``multipleOf``, ``minLength``,
``maxLength``, ``pattern``, ``format: date-time``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``minItems``, ``maxItems``; annotations (``title``,
``description``, ``$schema``...) are ignored and any other keyword is refused when the
validator is built, so no part of a schema is silently skipped.

Normalization: a ``number`` field holds a float, an ``integer`` field an int (``3.0``
becomes ``3``), a ``date-time`` string an aware UTC datetime (the source's timestamp
field is parsed by the validator after this check, so that schema errors come first); an object keeps its
declared properties in schema order (an absent optional one that may be null becomes
``null``), then the extra members the schema allows, in the order they came.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence, Sized
from typing import Any, cast

from rtml.core.validation.describe import child, json_type, show, typed
from rtml.core.validation.outcome import Failure
from rtml.core.validation.timestamps import parse_event_time
from rtml.errors import DefinitionError

Check = Callable[[Any, str], Any]

ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated",
     "readOnly", "writeOnly", "contentMediaType", "contentEncoding"}
)  # fmt: skip
KEYWORDS = frozenset(
    {"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
     "multipleOf", "minLength", "maxLength", "pattern", "format", "properties", "required",
     "additionalProperties", "items", "minItems", "maxItems"}
)  # fmt: skip
TYPES = frozenset({"null", "boolean", "integer", "number", "string", "array", "object"})


def compile_root(schema: Mapping[str, Any], *, timestamp_field: str) -> Check:
    """The check of a whole event. ``timestamp_field`` must be a string field; it is
    left as it is for the validator to parse (a failure there is ``bad_timestamp``)."""
    return _Compiler(timestamp_field).node(schema, "$", top=True)


def declared_types(schema: Mapping[str, Any] | bool) -> tuple[str, ...]:
    """The ``type`` of a property schema as a tuple (all types when it has none)."""
    if not isinstance(schema, Mapping) or "type" not in schema:
        return tuple(sorted(TYPES))
    kind = schema["type"]
    return (kind,) if isinstance(kind, str) else tuple(kind)


def accepts_null(schema: Mapping[str, Any] | bool) -> bool:
    """Whether ``null`` is a valid value: an absent optional field of such a schema is
    normalized to ``null``."""
    if schema is True:
        return True
    if not isinstance(schema, Mapping) or "null" not in declared_types(schema):
        return False
    if "enum" in schema and None not in schema["enum"]:
        return False
    return "const" not in schema or schema["const"] is None


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: ``1 == 1.0`` but ``true != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


class _Compiler:
    def __init__(self, timestamp_field: str) -> None:
        self.timestamp_field = timestamp_field

    def node(self, schema: Any, where: str, *, top: bool = False, timestamp: bool = False) -> Check:
        if schema is True:
            return _identity
        if schema is False:
            return _nothing
        if not isinstance(schema, Mapping):
            raise _bad_schema(where, "a schema must be an object or a boolean")
        unknown = sorted(set(schema) - KEYWORDS - ANNOTATIONS)
        if unknown:
            raise _bad_schema(where, f"keyword {unknown[0]!r} is not supported by the validator")
        types = declared_types(schema)
        if not set(types) <= TYPES:
            raise _bad_schema(where, f"type {schema['type']!r} is not a JSON Schema type")
        if timestamp and "string" not in types:
            raise _bad_schema(where, "the source's timestamp field must be a string (format date-time)")
        steps: list[Check] = [] if "type" not in schema else [_type_step(types)]
        if "enum" in schema or "const" in schema:
            steps.append(_enum_step(schema["enum"] if "enum" in schema else [schema["const"]], where))
        steps.extend(_number_steps(schema, where))
        if "string" in types:
            steps.extend(self._string_steps(schema, where, timestamp))
        if "items" in schema or "minItems" in schema or "maxItems" in schema:
            steps.append(self._array_step(schema, where))
        if "properties" in schema or "required" in schema or "additionalProperties" in schema:
            steps.append(self._object_step(schema, where, top))
        return _chain(steps)

    def _string_steps(self, schema: Mapping[str, Any], where: str, timestamp: bool) -> list[Check]:
        steps: list[Check] = [_unicode_step]
        for key, low in (("minLength", True), ("maxLength", False)):
            if key in schema:
                steps.append(_length_step(_count(schema[key], key, where), key, low, str))
        if "pattern" in schema:
            try:
                regex = re.compile(schema["pattern"])
            except (re.error, TypeError) as exc:
                raise _bad_schema(where, f"pattern {schema['pattern']!r} is not a regex ({exc})") from None
            steps.append(_pattern_step(regex))
        if schema.get("format") == "date-time" and not timestamp:  # the validator parses that one
            steps.append(_date_time_step)
        return steps

    def _array_step(self, schema: Mapping[str, Any], where: str) -> Check:
        items = self.node(schema.get("items", True), f"{where}.items")
        bounds = [
            _length_step(_count(schema[k], k, where), k, k == "minItems", list)
            for k in ("minItems", "maxItems")
            if k in schema
        ]

        def array(value: Any, path: str) -> Any:
            if not isinstance(value, list):
                return value
            for bound in bounds:
                bound(value, path)
            return [items(v, f"{path}[{i}]") for i, v in enumerate(value)]

        return array

    def _object_step(self, schema: Mapping[str, Any], where: str, top: bool) -> Check:
        declared = schema.get("properties", {})
        required = schema.get("required", [])
        if not isinstance(declared, Mapping) or not isinstance(required, list):
            raise _bad_schema(where, "properties must be an object and required a list")
        props = {
            name: self.node(sub, f"{where}.properties.{name}", timestamp=top and name == self.timestamp_field)
            for name, sub in declared.items()
        }
        nullable = frozenset(name for name, sub in declared.items() if accepts_null(sub))
        extra_schema = schema.get("additionalProperties", True)
        extra = None if extra_schema is False else self.node(extra_schema, f"{where}.additionalProperties")
        return _object_check(props, tuple(required), nullable, extra)


def _object_check(
    props: dict[str, Check], required: Sequence[str], nullable: frozenset[str], extra: Check | None
) -> Check:
    must = frozenset(required)
    undeclared_required = [name for name in required if name not in props]
    paths: dict[str, dict[str, str]] = {}  # parent path -> member name -> member path

    def member_paths(path: str) -> dict[str, str]:
        known = paths.get(path)
        if known is None:
            known = {name: child(path, name) for name in props}
            if len(paths) < 64:
                paths[path] = known
        return known

    def obj(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        where = member_paths(path)
        for name, check in props.items():
            if name in value:
                out[name] = check(value[name], where[name])
            elif name in must:
                raise Failure("missing_field", "required field is missing", where[name])
            elif name in nullable:
                out[name] = None
        for name in undeclared_required:
            if name not in value:
                raise Failure("missing_field", "required field is missing", child(path, name))
        for key, item in value.items():
            if key in props:
                continue
            _unicode_step(key, path)
            if extra is None:
                raise Failure("extra_field", "is not a field of this schema", child(path, key))
            out[key] = extra(item, child(path, key))
        return out

    return obj


def _chain(steps: list[Check]) -> Check:
    if len(steps) == 1:
        return steps[0]

    def chained(value: Any, path: str) -> Any:
        for step in steps:
            value = step(value, path)
        return value

    return chained


def _identity(value: Any, path: str) -> Any:
    return value


def _nothing(value: Any, path: str) -> Any:
    raise Failure("extra_field", "no value is allowed here (the schema is false)", path)


def _type_step(types: tuple[str, ...]) -> Check:
    allowed = frozenset(types)
    expected = " or ".join(types)

    def type_check(value: Any, path: str) -> Any:
        kind = json_type(value)
        if kind == "integer" and "integer" not in allowed and "number" in allowed:
            try:
                return float(value)
            except OverflowError:
                raise Failure("out_of_range", f"{show(value)} is too large for a number", path) from None
        if kind == "number" and "number" not in allowed and "integer" in allowed and value.is_integer():
            return int(value)
        if kind in allowed:
            return value
        raise Failure("wrong_type", f"expected {expected}, got {typed(value)}", path)

    return type_check


def _enum_step(values: Any, where: str) -> Check:
    if not isinstance(values, list) or not values:
        raise _bad_schema(where, "enum must be a non-empty list")
    listed = ", ".join(show(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")

    def enum(value: Any, path: str) -> Any:
        if any(json_equal(value, v) for v in values):
            return value
        raise Failure("not_in_enum", f"{show(value)} is not one of {listed}", path)

    return enum


def _number_steps(schema: Mapping[str, Any], where: str) -> list[Check]:
    tests: list[tuple[str, Callable[[Any, Any], bool], str]] = [
        ("minimum", lambda v, b: v >= b, "less than the minimum"),
        ("maximum", lambda v, b: v <= b, "more than the maximum"),
        ("exclusiveMinimum", lambda v, b: v > b, "not more than the exclusive minimum"),
        ("exclusiveMaximum", lambda v, b: v < b, "not less than the exclusive maximum"),
        ("multipleOf", _is_multiple, "not a multiple of"),
    ]
    steps: list[Check] = []
    for key, test, words in tests:
        if key not in schema:
            continue
        bound = schema[key]
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
            raise _bad_schema(where, f"{key} must be a finite number, got {bound!r}")
        if key == "multipleOf" and bound <= 0:
            raise _bad_schema(where, "multipleOf must be greater than 0")
        steps.append(_bound_step(bound, test, f"{words} {show(bound)}"))
    return steps


def _bound_step(bound: int | float, test: Callable[[Any, Any], bool], words: str) -> Check:
    def number(value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or test(value, bound):
            return value
        raise Failure("out_of_range", f"{show(value)} is {words}", path)

    return number


def _is_multiple(value: int | float, step: int | float) -> bool:
    if isinstance(value, int) and isinstance(step, int):
        return value % step == 0
    try:
        quotient = value / step
        return int(quotient) == quotient
    except OverflowError:
        return False


def _count(bound: Any, key: str, where: str) -> int:
    if isinstance(bound, bool) or not isinstance(bound, int) or bound < 0:
        raise _bad_schema(where, f"{key} must be a non-negative integer, got {bound!r}")
    return bound


def _length_step(bound: int, key: str, low: bool, kind: type) -> Check:
    def length(value: Any, path: str) -> Any:
        if not isinstance(value, kind):
            return value
        n = len(cast(Sized, value))
        if (n < bound) if low else (n > bound):
            words = "less than" if low else "more than"
            raise Failure("out_of_range", f"length {n} is {words} {key} {bound}", path)
        return value

    return length


def _unicode_step(value: Any, path: str) -> Any:
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(value[exc.start])
            raise Failure(
                "not_utf8", f"holds a lone surrogate \\u{code:04x}, which is not Unicode text", path
            ) from None
    return value


def _pattern_step(regex: re.Pattern[str]) -> Check:
    def pattern(value: Any, path: str) -> Any:
        if isinstance(value, str) and regex.search(value) is None:
            raise Failure(
                "bad_format", f"{show(value)} does not match the pattern {show(regex.pattern)}", path
            )
        return value

    return pattern


def _date_time_step(value: Any, path: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return parse_event_time(value)
    except ValueError as exc:
        raise Failure("bad_format", f"{show(value)} {exc}", path) from None


def _bad_schema(where: str, problem: str) -> DefinitionError:
    return DefinitionError(
        f"schema {where}: {problem}",
        fix="use the JSON Schema subset listed in docs/validation.md",
    )
