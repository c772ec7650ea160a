"""On the generator's stream: every clean event valid, every dirty kind classified as the
generator says, the verdict on the schema part equal to jsonschema's, fast == precise."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from validation_helpers import base_event, example_schema, line, make_validator

from rtml.core.validation import Deduper, Invalid, Valid, Validator
from rtml.datagen import generate
from rtml.datagen.dirty import INVALID_KINDS
from rtml.datagen.ecommerce import Generation
from rtml.timeutil import parse_timestamp

# the code each invalid kind of the generator must get (the schema's minimum catches a
# negative price before the rule "price >= 0" does)
EXPECTED_CODE = {
    "wrong_type": "wrong_type",
    "missing_field": "missing_field",
    "negative_price": "out_of_range",
    "unknown_event_type": "not_in_enum",
    "bad_timestamp": "bad_timestamp",
    "future_timestamp": "future_timestamp",
    "broken_json": "not_json",
}
BEYOND_JSON_SCHEMA = {"bad_timestamp", "future_timestamp", "rule_failed"}


@pytest.fixture(scope="module")
def stream() -> Generation:
    return generate(5000, seed=5, dirty_rate=0.2)


@pytest.fixture(scope="module")
def stream_validator(stream: Generation) -> Validator:
    last = stream.summary.last_event_time
    assert last is not None
    return make_validator(now=lambda: last)


def test_every_kind_is_classified_as_the_generator_says(
    stream: Generation, stream_validator: Validator
) -> None:
    assert set(EXPECTED_CODE) == set(INVALID_KINDS)
    outcomes = stream_validator.validate_many(stream.lines)
    codes = Counter(o.code for o in outcomes if isinstance(o, Invalid))
    expected = Counter({EXPECTED_CODE[k]: n for k, n in stream.summary.kinds.items() if k in EXPECTED_CODE})
    assert codes == expected
    deduper = Deduper(horizon="1h")
    unique = [
        o for o in outcomes if isinstance(o, Valid) and not deduper.is_duplicate(o.event_id, o.event_time_ms)
    ]
    assert len(unique) == stream.summary.valid
    assert deduper.duplicates == stream.summary.duplicates
    assert len(unique) + deduper.duplicates + sum(codes.values()) == stream.summary.produced


def test_clean_events_are_valid_and_unchanged_but_for_the_time_format() -> None:
    clean = generate(2000, seed=9, dirty_rate=0.0)
    last = clean.summary.last_event_time
    assert last is not None
    validator = make_validator(now=lambda: last)
    for raw, outcome in zip(clean.lines, validator.validate_many(clean.lines), strict=True):
        assert isinstance(outcome, Valid), outcome
        original = json.loads(raw)
        event = outcome.event
        assert parse_timestamp(event.pop("event_time")) == parse_timestamp(original.pop("event_time"))
        assert event == {**dict.fromkeys(["category_code", "brand", "user_session"]), **original}


def test_the_fast_and_the_precise_path_agree_on_the_stream(
    stream: Generation, stream_validator: Validator
) -> None:
    for raw, fast in zip(stream.lines, stream_validator.validate_many(stream.lines), strict=True):
        assert fast == stream_validator.validate_precise(raw, now_ms=None)


def jsonschema_says_valid(checker: jsonschema.Draft202012Validator, raw: bytes) -> bool:
    try:
        document = json.loads(raw)
    except ValueError:
        return False
    return checker.is_valid(document)


def schema_part_valid(outcome: Valid | Invalid) -> bool:
    """rtml's verdict on what JSON Schema alone can say (timestamps and rules aside)."""
    return outcome.ok or outcome.code in BEYOND_JSON_SCHEMA  # type: ignore[union-attr]


def test_the_schema_verdict_agrees_with_jsonschema_on_the_stream(
    stream: Generation, stream_validator: Validator
) -> None:
    checker = jsonschema.Draft202012Validator(example_schema())
    for raw, outcome in zip(stream.lines, stream_validator.validate_many(stream.lines), strict=True):
        assert schema_part_valid(outcome) == jsonschema_says_valid(checker, raw), (raw, outcome)


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 0.0, 3.0, -0.5, "", "view", "cart", "VIEW", "12.x", "x" * 65]),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
FIELDS = list(example_schema()["properties"]) + ["extra"]


@st.composite
def mutated_events(draw: st.DrawFn) -> bytes:
    event: dict[str, Any] = base_event()
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        if name != "event_time" and draw(st.booleans()):
            event.pop(name, None)
        else:
            event[name] = draw(VALUES)
    return line(event)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=mutated_events())
def test_agreement_on_mutated_events(raw: bytes) -> None:
    validator = make_validator()
    checker = jsonschema.Draft202012Validator(example_schema())
    fast = validator.validate(raw)
    assert fast == validator.validate_precise(raw)
    assert schema_part_valid(fast) == jsonschema_says_valid(checker, raw), (raw, fast)
