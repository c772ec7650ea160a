"""JSON Schema compatibility rules (Confluent's common cases), as a table."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rtml.core.compatibility import ParsedSchema, check_compatibility, parse_schema, read_problems


def js(doc: Any) -> ParsedSchema:
    return parse_schema("JSON", json.dumps(doc))


# -- JSON Schema: (reader, writer, readable?, fragment) -----------------------------------

OPEN = {"type": "object", "properties": {"a": {"type": "string"}}}
CLOSED = {**OPEN, "additionalProperties": False}
JSON_CASES = [
    ("same", OPEN, OPEN, True, ""),
    ("type widened", {"type": ["string", "null"]}, {"type": "string"}, True, ""),
    ("type narrowed", {"type": "string"}, {"type": ["string", "null"]}, False, "TYPE_NARROWED"),
    ("integer read as number", {"type": "number"}, {"type": "integer"}, True, ""),
    ("number read as integer", {"type": "integer"}, {"type": "number"}, False, "TYPE_NARROWED"),
    ("type added", {"type": "string"}, {}, False, "TYPE_NARROWED"),
    ("enum widened", {"enum": ["a", "b", "c"]}, {"enum": ["a", "b"]}, True, ""),
    ("enum narrowed", {"enum": ["a"]}, {"enum": ["a", "b"]}, False, "ENUM_ARRAY_NARROWED"),
    ("enum added", {"type": "string", "enum": ["a"]}, {"type": "string"}, False, "ENUM_ADDED"),
    ("enum removed", {"type": "string"}, {"type": "string", "enum": ["a"]}, True, ""),
    ("minimum lowered", {"type": "number", "minimum": 0}, {"type": "number", "minimum": 5}, True, ""),
    (
        "minimum raised",
        {"type": "number", "minimum": 5},
        {"type": "number", "minimum": 0},
        False,
        "MINIMUM_INCREASED",
    ),
    ("minimum added", {"type": "number", "minimum": 0}, {"type": "number"}, False, "MINIMUM_ADDED"),
    (
        "maximum lowered",
        {"type": "number", "maximum": 5},
        {"type": "number", "maximum": 9},
        False,
        "MAXIMUM_DECREASED",
    ),
    (
        "exclusive minimum at the same value",
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "number", "minimum": 0},
        False,
        "MINIMUM_INCREASED",
    ),
    (
        "multipleOf divides",
        {"type": "number", "multipleOf": 2},
        {"type": "number", "multipleOf": 4},
        True,
        "",
    ),
    (
        "multipleOf changed",
        {"type": "number", "multipleOf": 3},
        {"type": "number", "multipleOf": 4},
        False,
        "MULTIPLE_OF",
    ),
    ("maxLength raised", {"type": "string", "maxLength": 9}, {"type": "string", "maxLength": 5}, True, ""),
    (
        "maxLength lowered",
        {"type": "string", "maxLength": 2},
        {"type": "string", "maxLength": 5},
        False,
        "MAX_LENGTH",
    ),
    (
        "minLength added",
        {"type": "string", "minLength": 1},
        {"type": "string"},
        False,
        "MIN_LENGTH_INCREASED",
    ),
    ("pattern added", {"type": "string", "pattern": "^a"}, {"type": "string"}, False, "PATTERN_ADDED"),
    ("pattern removed", {"type": "string"}, {"type": "string", "pattern": "^a"}, True, ""),
    (
        "property added to closed writer",
        {**CLOSED, "properties": {**CLOSED["properties"], "b": {"type": "integer"}}},
        CLOSED,
        True,
        "",
    ),
    (
        "property added to open writer",
        {**OPEN, "properties": {**OPEN["properties"], "b": {"type": "integer"}}},
        OPEN,
        False,
        "PROPERTY_ADDED_OPEN_CONTENT_MODEL",
    ),
    (
        "property added, covered by partially open writer",
        {
            "type": "object",
            "properties": {"b": {"type": "integer"}},
            "additionalProperties": {"type": "integer"},
        },
        {"type": "object", "additionalProperties": {"type": "number"}},
        False,
        "NOT_COVERED_BY_PARTIALLY_OPEN",
    ),
    ("property removed from open reader", {"type": "object"}, OPEN, True, ""),
    (
        "property removed from closed reader",
        {"type": "object", "additionalProperties": False},
        CLOSED,
        False,
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    ),
    (
        "required property added",
        {**CLOSED, "required": ["a"]},
        CLOSED,
        False,
        "REQUIRED_PROPERTY_ADDED",
    ),
    (
        "required property added with default",
        {**CLOSED, "properties": {"a": {"type": "string", "default": ""}}, "required": ["a"]},
        CLOSED,
        True,
        "",
    ),
    ("required dropped", CLOSED, {**CLOSED, "required": ["a"]}, True, ""),
    ("additionalProperties closed", CLOSED, OPEN, False, "ADDITIONAL_PROPERTIES_REMOVED"),
    ("additionalProperties opened", OPEN, CLOSED, True, ""),
    (
        "nested property narrowed",
        {"type": "object", "properties": {"o": CLOSED}},
        {
            "type": "object",
            "properties": {"o": {**CLOSED, "properties": {"a": {"type": ["string", "null"]}}}},
        },
        False,
        "#/properties/o/properties/a/type",
    ),
    (
        "array items widened",
        {"type": "array", "items": {"type": "number"}},
        {"type": "array", "items": {"type": "integer"}},
        True,
        "",
    ),
    ("maxItems added", {"type": "array", "maxItems": 3}, {"type": "array"}, False, "MAX_ITEMS_ADDED"),
    (
        "anyOf branch added",
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        {"anyOf": [{"type": "string"}]},
        True,
        "",
    ),
    (
        "anyOf branch removed",
        {"anyOf": [{"type": "string"}]},
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        False,
        "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
    ),
    (
        "local $ref followed",
        {"$defs": {"n": {"type": "number"}}, "type": "object", "properties": {"x": {"$ref": "#/$defs/n"}}},
        {"type": "object", "properties": {"x": {"type": "integer"}}},
        True,
        "",
    ),
    (
        "recursive schema",
        {"type": "object", "properties": {"child": {"$ref": "#"}, "v": {"type": "number"}}},
        {"type": "object", "properties": {"child": {"$ref": "#"}, "v": {"type": "integer"}}},
        True,
        "",
    ),
    ("true reads anything", True, {"type": "string"}, True, ""),
    ("false reads nothing", False, {"type": "string"}, False, "TYPE_NARROWED"),
]


@pytest.mark.parametrize(
    ("reader", "writer", "readable", "fragment"),
    [pytest.param(r, w, ok, frag, id=name) for name, r, w, ok, frag in JSON_CASES],
)
def test_json_schema_rules(reader: Any, writer: Any, readable: bool, fragment: str) -> None:
    problems = read_problems(js(reader), js(writer))
    assert (problems == []) is readable, problems
    if fragment:
        assert any(fragment in p for p in problems), problems


def test_example_source_schema_evolves_compatibly() -> None:
    from rtml.project import EXAMPLE_DIR

    doc = json.loads((EXAMPLE_DIR / "schemas" / "event.schema.json").read_text())
    old = js(doc)
    optional_added = {**doc, "properties": {**doc["properties"], "referrer": {"type": ["string", "null"]}}}
    assert check_compatibility("BACKWARD", js(optional_added), [("v1", old)]) == []
    # The model is closed (additionalProperties: false): the old schema refuses the new
    # property, so the change is not forward (nor full) compatible.
    forward = check_compatibility("FULL", js(optional_added), [("v1", old)])
    assert len(forward) == 1 and "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL" in forward[0]
    required_added = {**optional_added, "required": [*doc["required"], "referrer"]}
    assert check_compatibility("BACKWARD", js(required_added), [("v1", old)])
    fewer_types = {
        **doc,
        "properties": {**doc["properties"], "event_type": {"type": "string", "enum": ["view"]}},
    }
    problems = check_compatibility("BACKWARD", js(fewer_types), [("v1", old)])
    assert problems and "ENUM_ARRAY_NARROWED" in problems[0] and "v1" in problems[0]
