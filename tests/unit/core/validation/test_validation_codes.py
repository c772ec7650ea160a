"""Every error code, with its exact field path; and what a valid event is normalized to."""

from __future__ import annotations

import json
from typing import Any

import pytest
from validation_helpers import DROP, base_event, example_schema, line, make_validator

from rtml.core.validation import ERROR_CODES, Invalid, Valid, Validator

WIRE = b"\x00\x00\x00\x00\x07"  # Confluent header: magic byte 0, schema id 7
GOOD = line(base_event())


def deep(n: int) -> bytes:
    return b'{"a":' + b"[" * n + b"]" * n + b"}"


CASES: list[tuple[str, bytes, str, str | None]] = [
    ("not UTF-8", GOOD.replace(b"xiaomi", b"xia\xffmi"), "not_utf8", None),
    ("latin-1 text", GOOD.replace(b"xiaomi", "xiaomï".encode("latin-1")), "not_utf8", None),
    ("UTF-16", json.dumps(base_event()).encode("utf-16"), "not_utf8", None),
    ("lone surrogate", GOOD.replace(b"xiaomi", b"\\ud800"), "not_utf8", "$.brand"),
    ("cut short", GOOD[:40], "not_json", None),
    ("empty", b"", "not_json", None),
    ("blank", b"  \n", "not_json", None),
    ("trailing bytes", GOOD + b"x", "not_json", None),
    ("two events", GOOD + GOOD, "not_json", None),
    ("UTF-8 BOM", b"\xef\xbb\xbf" + GOOD, "not_json", None),
    ("short wire header", b"\x00\x00\x01", "not_json", None),
    ("NaN", GOOD.replace(b"489.07", b"NaN"), "nan_or_infinity", None),
    ("Infinity", GOOD.replace(b"489.07", b"Infinity"), "nan_or_infinity", None),
    ("-Infinity", GOOD.replace(b"489.07", b"-Infinity"), "nan_or_infinity", None),
    ("overflowing float", GOOD.replace(b"489.07", b"1e400"), "nan_or_infinity", None),
    ("nested 40 deep", deep(40), "too_deep", None),
    ("nested 100000 deep", deep(100_000), "too_deep", None),
    ("array", b"[1, 2]", "not_object", "$"),
    ("string", b'"event"', "not_object", "$"),
    ("null", b"null", "not_object", "$"),
    ("number", b"12", "not_object", "$"),
    ("unknown schema id", WIRE + GOOD, "unknown_schema_id", None),
    ("missing price", line(base_event(price=DROP)), "missing_field", "$.price"),
    ("missing event_time", line(base_event(event_time=DROP)), "missing_field", "$.event_time"),
    ("missing event_id", line(base_event(event_id=DROP)), "missing_field", "$.event_id"),
    ("extra field", line(base_event(coupon="X1")), "extra_field", "$.coupon"),
    ("odd extra field name", line(base_event(**{"a b": 1})), "extra_field", '$["a b"]'),
    ("price as string", line(base_event(price="12.x")), "wrong_type", "$.price"),
    ("product_id as string", line(base_event(product_id="abc")), "wrong_type", "$.product_id"),
    ("product_id as float", line(base_event(product_id=3.5)), "wrong_type", "$.product_id"),
    ("user_id as boolean", line(base_event(user_id=True)), "wrong_type", "$.user_id"),
    ("brand as number", line(base_event(brand=5)), "wrong_type", "$.brand"),
    ("price null", line(base_event(price=None)), "wrong_type", "$.price"),
    ("event_time as number", line(base_event(event_time=1569888034)), "wrong_type", "$.event_time"),
    ("brand as object", line(base_event(brand={"a": 1})), "wrong_type", "$.brand"),
    ("unknown event_type", line(base_event(event_type="wishlist")), "not_in_enum", "$.event_type"),
    ("event_type case", line(base_event(event_type="VIEW")), "not_in_enum", "$.event_type"),
    ("negative price", line(base_event(price=-1.0)), "out_of_range", "$.price"),
    ("negative product_id", line(base_event(product_id=-5)), "out_of_range", "$.product_id"),
    ("empty event_id", line(base_event(event_id="")), "out_of_range", "$.event_id"),
    ("long event_id", line(base_event(event_id="x" * 65)), "out_of_range", "$.event_id"),
    ("unparseable time", line(base_event(event_time="yesterday")), "bad_timestamp", "$.event_time"),
    ("impossible date", line(base_event(event_time="2019-13-45T99:00:00Z")), "bad_timestamp", "$.event_time"),
    ("no timezone", line(base_event(event_time="2019-10-01T00:00:34")), "bad_timestamp", "$.event_time"),
    ("empty time", line(base_event(event_time="")), "bad_timestamp", "$.event_time"),
    ("future", line(base_event(event_time="2019-11-01T00:00:00Z")), "future_timestamp", "$.event_time"),
]


@pytest.mark.parametrize(("raw", "code", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_invalid_event_gets_its_code_and_path(
    validator: Validator, raw: bytes, code: str, path: str | None
) -> None:
    for outcome in (validator.validate(raw), validator.validate_precise(raw)):
        assert isinstance(outcome, Invalid), outcome
        assert (outcome.code, outcome.field_path) == (code, path), outcome.message
        assert outcome.raw == raw
        assert outcome.message.startswith(f"{path}: " if path else "")


def test_the_cases_cover_every_error_code() -> None:
    covered = {c[2] for c in CASES} | {"too_large", "bad_format", "rule_failed"}  # tested below
    assert covered == set(ERROR_CODES)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (line(base_event(price="12.x")), '$.price: expected number, got string "12.x"'),
        (line(base_event(price=-2.5)), "$.price: -2.5 is less than the minimum 0"),
        (
            line(base_event(event_type="wishlist")),
            '$.event_type: "wishlist" is not one of "view", "cart", "remove_from_cart", "purchase"',
        ),
        (line(base_event(brand=DROP, price=DROP)), "$.price: required field is missing"),
        (line(base_event(category_code=None, brand=[1])), "$.brand: expected string or null, got array"),
        (
            line(base_event(event_time="2019-11-01T00:00:00Z")),
            "$.event_time: 2019-11-01T00:00:00.000Z is 17d ahead of now (2019-10-15T00:00:00.000Z); "
            "at most 5m is allowed",
        ),
    ],
)
def test_messages_say_what_is_wrong(validator: Validator, raw: bytes, message: str) -> None:
    outcome = validator.validate(raw)
    assert isinstance(outcome, Invalid)
    assert outcome.message == message


def test_too_large() -> None:
    small = make_validator(max_bytes=100)
    outcome = small.validate(GOOD)
    assert isinstance(outcome, Invalid)
    assert (outcome.code, outcome.field_path) == ("too_large", None)
    assert str(len(GOOD)) in outcome.message


def test_depth_limit_is_configurable() -> None:
    schema = example_schema()
    schema["additionalProperties"] = True
    doc = line(base_event(extra={"a": {"b": {"c": 1}}}))  # depth 4
    assert make_validator(schema, max_depth=4).validate(doc).ok
    outcome = make_validator(schema, max_depth=3).validate(doc)
    assert isinstance(outcome, Invalid) and outcome.code == "too_deep"


def test_bad_format_pattern_and_date_time() -> None:
    schema = example_schema()
    schema["properties"]["user_session"] = {"type": ["string", "null"], "pattern": "^[0-9a-f-]+$"}
    schema["properties"]["seen_at"] = {"type": "string", "format": "date-time"}
    v = make_validator(schema)
    for changes, path in (
        ({"user_session": "NOT HEX"}, "$.user_session"),
        ({"seen_at": "soon"}, "$.seen_at"),
    ):
        outcome = v.validate(line(base_event(**changes)))
        assert isinstance(outcome, Invalid)
        assert (outcome.code, outcome.field_path) == ("bad_format", path)
    ok = v.validate(line(base_event(seen_at="2019-10-01T02:00:00+02:00")))
    assert isinstance(ok, Valid)
    assert ok.event["seen_at"] == "2019-10-01T00:00:00Z"


@pytest.mark.parametrize(
    ("rule", "changes", "path", "words"),
    [
        ("price < 1000", {"price": 5000.0}, "$.price", "rule 'price < 1000' is false (price = 5000.0)"),
        ("user_id <> product_id", {"user_id": 7, "product_id": 7}, None, "product_id = 7, user_id = 7"),
        ("brand LIKE 'x%'", {"brand": "apple"}, "$.brand", 'brand = "apple"'),
        ("product_id // (user_id - 3) >= 0", {"user_id": 3}, None, "cannot be evaluated"),
    ],
)
def test_rule_failed(rule: str, changes: dict[str, Any], path: str | None, words: str) -> None:
    v = make_validator(rules=("price >= 0", rule))
    for outcome in (v.validate(line(base_event(**changes))), v.validate_precise(line(base_event(**changes)))):
        assert isinstance(outcome, Invalid)
        assert (outcome.code, outcome.field_path) == ("rule_failed", path)
        assert words in outcome.message


def test_a_rule_that_is_null_passes() -> None:
    """CHECK semantics: NULL (unknown) passes; only FALSE fails."""
    v = make_validator(rules=("brand LIKE 'x%'", "LENGTH(category_code) > 100 OR category_code IS NULL"))
    assert v.validate(line(base_event(brand=None, category_code=None))).ok
    assert not v.validate(line(base_event(brand="apple"))).ok


def test_a_valid_event_is_normalized() -> None:
    v = make_validator()
    outcome = v.validate(line(base_event(price=3, product_id=7.0, brand=DROP)))
    assert isinstance(outcome, Valid)
    assert outcome.event_id == "e-1"
    assert outcome.event_time_ms == 1569888034123
    event = outcome.event
    assert list(event) == list(example_schema()["properties"])  # schema order, brand null
    assert event["price"] == 3.0 and isinstance(event["price"], float)
    assert event["product_id"] == 7 and isinstance(event["product_id"], int)
    assert event["brand"] is None
    assert event["event_time"] == "2019-10-01T00:00:34.123000Z"


@pytest.mark.parametrize(
    "text",
    [
        "2019-10-01T00:00:34.123Z",
        "2019-10-01T02:00:34.123+02:00",
        "2019-09-30T19:00:34.123-05:00",
        "2019-10-01 00:00:34.123 UTC",
        "2019-10-01t00:00:34.123z",
        "2019-10-01T00:00:34.123+00:00",
    ],
)
def test_timestamps_are_normalized_to_utc(validator: Validator, text: str) -> None:
    outcome = validator.validate(line(base_event(event_time=text)))
    assert isinstance(outcome, Valid), outcome
    assert outcome.event_time_ms == 1569888034123
    assert outcome.event["event_time"] == "2019-10-01T00:00:34.123000Z"


def test_wire_format_with_a_known_schema_id() -> None:
    v = make_validator(known_schema_ids={7})
    outcome = v.validate(WIRE + GOOD)
    assert isinstance(outcome, Valid)
    assert outcome.schema_id == 7
    assert outcome.payload == make_validator().validate(GOOD).payload  # type: ignore[union-attr]
    assert make_validator().validate(WIRE + GOOD).ok  # no registry: any id is accepted


def test_pretty_printed_json_is_valid(validator: Validator) -> None:
    pretty = json.dumps(base_event(), indent=2).encode()
    assert validator.validate(pretty) == validator.validate(GOOD)


def test_the_fast_and_the_precise_path_agree(validator: Validator) -> None:
    precise = make_validator(fast=False, known_schema_ids={1})
    assert validator.has_fast_path and not precise.has_fast_path
    for raw in [GOOD, *(c[1] for c in CASES)]:
        assert validator.validate(raw) == precise.validate(raw)


def test_validate_many_keeps_the_order(validator: Validator) -> None:
    raws = [GOOD, b"{", line(base_event(event_id="e-2"))]
    outcomes = validator.validate_many(raws)
    assert [o.ok for o in outcomes] == [True, False, True]
    assert [o.event_id for o in outcomes if isinstance(o, Valid)] == ["e-1", "e-2"]


def test_integer_ids_become_strings() -> None:
    schema = example_schema()
    schema["properties"]["event_id"] = {"type": ["string", "integer"]}
    outcome = make_validator(schema).validate(line(base_event(event_id=42)))
    assert isinstance(outcome, Valid) and outcome.event_id == "42"


def test_the_reference_time_can_be_given_per_call(validator: Validator) -> None:
    raw = line(base_event(event_time="2019-11-01T00:00:00Z"))
    assert not validator.validate(raw).ok
    assert validator.validate(raw, now_ms=1572566400000).ok  # 2019-11-01T00:00Z
    assert validator.validate_many([raw], now_ms=1572566400000 - 300_001)[0].ok is False
