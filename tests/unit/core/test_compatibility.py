"""Schema compatibility: Avro resolution rules, levels and parsing, as tables.

JSON Schema rules: test_json_schema_compat.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from rtml.core.compatibility import (
    CompatibilityLevel,
    InvalidSchemaError,
    ParsedSchema,
    check_compatibility,
    parse_schema,
    read_problems,
)


def avro(doc: Any) -> ParsedSchema:
    return parse_schema("AVRO", json.dumps(doc))


def js(doc: Any) -> ParsedSchema:
    return parse_schema("JSON", json.dumps(doc))


def record(*fields: dict[str, Any], name: str = "Event", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def field(name: str, kind: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, **extra}


# -- Avro: (reader, writer, readable?, fragment of the problem) --------------------------

ID = field("id", "long")
AVRO_CASES = [
    ("same", record(ID), record(ID), True, ""),
    ("field added with default", record(ID, field("n", "int", default=0)), record(ID), True, ""),
    (
        "field added without default",
        record(ID, field("n", "int")),
        record(ID),
        False,
        "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1",
    ),
    ("field removed", record(ID), record(ID, field("n", "int")), True, ""),
    ("int -> long", "long", "int", True, ""),
    ("int -> float", "float", "int", True, ""),
    ("long -> double", "double", "long", True, ""),
    ("float -> double", "double", "float", True, ""),
    ("long -> int", "int", "long", False, "TYPE_MISMATCH"),
    ("double -> float", "float", "double", False, "TYPE_MISMATCH"),
    ("string -> bytes", "bytes", "string", True, ""),
    ("bytes -> string", "string", "bytes", True, ""),
    ("string -> int", "int", "string", False, "TYPE_MISMATCH"),
    (
        "enum symbol removed",
        {"type": "enum", "name": "E", "symbols": ["a"]},
        {"type": "enum", "name": "E", "symbols": ["a", "b"]},
        False,
        "MISSING_ENUM_SYMBOLS",
    ),
    (
        "enum symbol added",
        {"type": "enum", "name": "E", "symbols": ["a", "b", "c"]},
        {"type": "enum", "name": "E", "symbols": ["a", "b"]},
        True,
        "",
    ),
    (
        "enum symbol removed, reader default",
        {"type": "enum", "name": "E", "symbols": ["a", "z"], "default": "z"},
        {"type": "enum", "name": "E", "symbols": ["a", "b"]},
        True,
        "",
    ),
    ("writer union into wider union", ["null", "int", "string"], ["null", "int"], True, ""),
    ("writer union branch lost", ["null", "int"], ["null", "int", "string"], False, "MISSING_UNION_BRANCH"),
    ("plain into union", ["null", "long"], "int", True, ""),
    ("union into plain", "long", ["null", "long"], False, "TYPE_MISMATCH at /0"),
    (
        "nested record field without default",
        record(field("inner", record(field("a", "int"), field("b", "int"), name="Inner"))),
        record(field("inner", record(field("a", "int"), name="Inner"))),
        False,
        "/fields/0/type/fields/1",
    ),
    (
        "nested promotion in optional record",
        record(field("inner", ["null", record(field("a", "double"), name="Inner")], default=None)),
        record(field("inner", ["null", record(field("a", "int"), name="Inner")], default=None)),
        True,
        "",
    ),
    ("record renamed", record(ID, name="Other"), record(ID), False, "NAME_MISMATCH"),
    ("record renamed with alias", record(ID, name="Other", aliases=["Event"]), record(ID), True, ""),
    ("field renamed with alias", record(field("key", "long", aliases=["id"])), record(ID), True, ""),
    ("array items promoted", {"type": "array", "items": "long"}, {"type": "array", "items": "int"}, True, ""),
    (
        "map values narrowed",
        {"type": "map", "values": "int"},
        {"type": "map", "values": "long"},
        False,
        "/values",
    ),
    (
        "fixed size changed",
        {"type": "fixed", "name": "F", "size": 8},
        {"type": "fixed", "name": "F", "size": 4},
        False,
        "FIXED_SIZE_MISMATCH",
    ),
    (
        "logical type read as its base",
        {"type": "long", "logicalType": "timestamp-millis"},
        "int",
        True,
        "",
    ),
    (
        "recursive list, field added with default",
        record(
            field("v", "int"),
            field("next", ["null", "Node"], default=None),
            field("w", "int", default=1),
            name="Node",
        ),
        record(field("v", "int"), field("next", ["null", "Node"], default=None), name="Node"),
        True,
        "",
    ),
]


@pytest.mark.parametrize(
    ("reader", "writer", "readable", "fragment"),
    [pytest.param(r, w, ok, frag, id=name) for name, r, w, ok, frag in AVRO_CASES],
)
def test_avro_resolution(reader: Any, writer: Any, readable: bool, fragment: str) -> None:
    problems = read_problems(avro(reader), avro(writer))
    assert (problems == []) is readable, problems
    if fragment:
        assert any(fragment in p for p in problems), problems


# -- levels -------------------------------------------------------------------------------

V1 = record(ID)
V2 = record(ID, field("n", "int", default=0))  # adds a field with a default
V3_NO_DEFAULT = record(ID, field("n", "int"), field("m", "int"))  # n, m without defaults


@pytest.mark.parametrize(
    ("level", "previous", "new", "compatible"),
    [
        ("NONE", [V1], record(field("x", "string")), True),
        ("BACKWARD", [V1], V2, True),
        ("BACKWARD", [V1], record(ID, field("n", "int")), False),
        ("FORWARD", [V1], record(ID, field("n", "int")), True),  # the old reader ignores n
        ("FORWARD", [V2], V1, True),  # the old reader has a default for n
        ("FORWARD", [record(ID, field("n", "int"))], V1, False),
        ("FULL", [V1], V2, True),
        ("FULL", [V1], record(ID, field("n", "int")), False),
        # BACKWARD checks only the latest; the transitive form checks every version.
        ("BACKWARD", [V2, V1], V3_NO_DEFAULT, False),
        ("BACKWARD", [record(ID, field("n", "int"), field("m", "int", default=0)), V1], V3_NO_DEFAULT, True),
        (
            "BACKWARD_TRANSITIVE",
            [record(ID, field("n", "int"), field("m", "int", default=0)), V1],
            V3_NO_DEFAULT,
            False,
        ),
        ("FORWARD_TRANSITIVE", [V2, V1], V2, True),
        (
            "FULL_TRANSITIVE",
            [V2, V1],
            record(ID, field("n", "int", default=0), field("k", "int", default=1)),
            True,
        ),
    ],
)
def test_levels(level: str, previous: list[Any], new: Any, compatible: bool) -> None:
    labelled = [(f"version {len(previous) - i}", avro(doc)) for i, doc in enumerate(previous)]
    problems = check_compatibility(CompatibilityLevel(level), avro(new), labelled)
    assert (problems == []) is compatible, problems


def test_schema_type_change_is_incompatible() -> None:
    problems = check_compatibility("BACKWARD", js({"type": "object"}), [("version 1", avro(V1))])
    assert problems and "SCHEMA_TYPE_CHANGED" in problems[0]


def test_level_properties() -> None:
    full = CompatibilityLevel.FULL_TRANSITIVE
    assert full.backward and full.forward and full.transitive
    assert CompatibilityLevel.FORWARD.forward and not CompatibilityLevel.FORWARD.backward
    assert not CompatibilityLevel.NONE.backward and not CompatibilityLevel.NONE.forward


# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema_type", "text", "fragment"),
    [
        ("AVRO", "{not json", "not valid JSON"),
        ("AVRO", '{"type": "nosuch"}', "Invalid Avro schema"),
        ("AVRO", '{"type": "record", "name": "R"}', "no 'fields'"),
        (
            "AVRO",
            '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": "x"}]}',
            "Default",
        ),
        ("AVRO", '{"type": "enum", "name": "E", "symbols": ["a", "a"]}', "unique"),
        ("JSON", "[1, 2]", "object or a boolean"),
        ("JSON", '{"type": "strin"}', "Invalid JSON Schema"),
        ("JSON", '{"type": "object", "required": "a"}', "required"),
        ("PROTOBUF", "syntax = 'proto3';", "unsupported schema type"),
    ],
)
def test_invalid_schemas_say_why(schema_type: str, text: str, fragment: str) -> None:
    with pytest.raises(InvalidSchemaError) as caught:
        parse_schema(schema_type, text)
    assert fragment in caught.value.reason


def test_canonical_text_ignores_white_space() -> None:
    compact = parse_schema("AVRO", '{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}')
    spaced = parse_schema(
        "AVRO", '{ "type": "record",\n "name": "R", "fields": [ {"name": "a", "type": "int"} ] }'
    )
    assert compact.text == spaced.text and compact.fingerprint == spaced.fingerprint
    reordered = parse_schema("AVRO", '{"name":"R","type":"record","fields":[{"name":"a","type":"int"}]}')
    assert reordered.fingerprint != compact.fingerprint
    normalized = parse_schema("AVRO", reordered.text, normalize=True)
    assert normalized.text == parse_schema("AVRO", compact.text, normalize=True).text
    assert (
        parse_schema("JSON", '{"type": "string"}').fingerprint != parse_schema("AVRO", '"string"').fingerprint
    )
