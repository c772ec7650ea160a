"""The JSON Schema subset: what builds a fast path, what only the precise path handles,
what is refused at build time; Avro record schemas."""

from __future__ import annotations

from typing import Any

import pytest
from validation_helpers import base_event, example_schema, line, make_validator

from rtml.core.validation import Invalid, Valid
from rtml.errors import DefinitionError


def schema_with(**props: Any) -> dict[str, Any]:
    schema = example_schema()
    schema["properties"].update(props)
    return schema


def test_the_example_schema_has_a_fast_path() -> None:
    assert make_validator().has_fast_path


@pytest.mark.parametrize(
    "prop",
    [
        {"type": "object", "properties": {"x": {"type": "integer"}}},
        {"type": "array", "items": {"type": "integer"}},
        {"type": "number", "multipleOf": 0.5},
        {"enum": [1, 2, 3]},
    ],
)
def test_schemas_beyond_the_fast_path_still_validate(prop: dict[str, Any]) -> None:
    v = make_validator(schema_with(extra=prop))
    assert not v.has_fast_path
    assert v.validate(line(base_event())).ok
    outcome = v.validate(line(base_event(extra="wrong")))
    assert isinstance(outcome, Invalid) and outcome.field_path == "$.extra"


def test_nested_objects_and_arrays_give_nested_paths() -> None:
    v = make_validator(
        schema_with(
            items={
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["sku"],
                    "additionalProperties": False,
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
                },
            }
        )
    )
    ok = v.validate(line(base_event(items=[{"sku": "a", "qty": 2}])))
    assert isinstance(ok, Valid)
    cases = [
        ([], "out_of_range", "$.items"),
        ([{"sku": "a"}, {"qty": 1}], "missing_field", "$.items[1].sku"),
        ([{"sku": "a", "qty": 0}], "out_of_range", "$.items[0].qty"),
        ([{"sku": "a", "x": 0}], "extra_field", "$.items[0].x"),
    ]
    for items, code, path in cases:
        outcome = v.validate(line(base_event(items=items)))
        assert isinstance(outcome, Invalid)
        assert (outcome.code, outcome.field_path) == (code, path)


def test_optional_fields_are_normalized_the_same_on_both_paths() -> None:
    schema = schema_with(note={"type": "string"}, score={"type": ["number", "null"]})
    fast, precise = make_validator(schema), make_validator(schema, fast=False)
    assert fast.has_fast_path
    for raw in (line(base_event()), line(base_event(note="n", score=2))):
        assert fast.validate(raw) == precise.validate(raw)
    event = fast.validate(line(base_event())).event  # type: ignore[union-attr]
    assert "note" not in event and event["score"] is None


@pytest.mark.parametrize(
    "schema",
    [
        schema_with(extra={"anyOf": [{"type": "string"}]}),
        schema_with(extra={"$ref": "#/$defs/x"}),
        schema_with(extra={"type": "strnig"}),
        schema_with(extra={"type": "string", "pattern": "("}),
        schema_with(event_time={"type": "integer"}),
    ],
)
def test_what_the_validator_cannot_check_is_refused_when_built(schema: dict[str, Any]) -> None:
    with pytest.raises(DefinitionError):
        make_validator(schema)


def test_a_rule_over_an_unknown_column_is_refused() -> None:
    with pytest.raises(DefinitionError, match="discount"):
        make_validator(rules=("discount >= 0",))


AVRO = {
    "type": "record",
    "name": "Event",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "event_time", "type": "string"},
        {"name": "event_type", "type": {"type": "enum", "name": "T", "symbols": ["view", "cart"]}},
        {"name": "product_id", "type": "long"},
        {"name": "price", "type": "double"},
        {"name": "brand", "type": ["null", "string"], "default": None},
        {"name": "qty", "type": "int", "default": 1},
    ],
}


def test_an_avro_record_schema_validates_json_events() -> None:
    v = make_validator(AVRO)
    assert v.has_fast_path
    event = {k: base_event()[k] for k in ("event_id", "event_time", "event_type", "product_id", "price")}
    assert v.validate(line(event)).ok
    outcome = v.validate(line({**event, "qty": 2**31}))
    assert isinstance(outcome, Invalid) and (outcome.code, outcome.field_path) == ("out_of_range", "$.qty")
    outcome = v.validate(line({**event, "event_type": "purchase"}))
    assert isinstance(outcome, Invalid) and outcome.code == "not_in_enum"


@pytest.mark.parametrize(
    "rules",
    [
        ("price > 1.5",),
        ("price >= 0", "1.5 < price", "price <= 100"),
        ("product_id > 2.5", "product_id < 7.5", "-3 <= product_id"),
        ("product_id >= 3", "product_id > 3"),
        ("price < 2", "price <= 2"),
    ],
)
def test_numeric_rules_checked_in_the_fast_decoder_agree_with_the_precise_path(
    rules: tuple[str, ...],
) -> None:
    fast, precise = make_validator(rules=rules), make_validator(rules=rules, fast=False)
    assert fast.has_fast_path
    seen = set()
    for value in (-5, 0, 1, 1.5, 1.5000001, 2, 2.5, 3, 4, 7, 7.5, 8, 100, 100.5):
        for field in ("price", "product_id"):
            if field == "product_id" and isinstance(value, float):
                continue
            raw = line(base_event(**{field: value}))
            outcome = fast.validate(raw)
            assert outcome == precise.validate(raw), (field, value)
            seen.add(outcome.ok or outcome.code)  # type: ignore[union-attr]
    assert True in seen and "rule_failed" in seen
