"""Bad input, generated: the validator never raises, never stalls, and gives each
invalid event a reason (or calls it valid when it really is)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from validation_helpers import base_event, example_schema, line, make_validator

from rtml.core.validation import ERROR_CODES, Invalid, Valid, Validator

GOOD = line(base_event())
VALIDATOR = make_validator(known_schema_ids={1, 2})
PERMISSIVE = make_validator(
    {**example_schema(), "additionalProperties": True, "required": []}, known_schema_ids={1, 2}
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def dump(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


def embedded(value: Any) -> bytes:
    """``value`` as a field of an otherwise valid event."""
    return GOOD[:-1] + b',"junk":' + dump(value) + b"}"


def nested(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + closer * depth


junk = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda n: GOOD[:n], st.integers(0, len(GOOD))),
    st.builds(lambda v: dump(v), json_values),
    st.builds(embedded, json_values),
    st.builds(lambda d: nested(d, b"[", b"]"), st.integers(1, 5000)),
    st.builds(lambda d: embedded(json.loads(nested(d, b"[", b"]"))), st.integers(1, 40)),
    st.builds(lambda d: b'{"a":' * d + b"1" + b"}" * d, st.integers(1, 3000)),
    st.builds(
        lambda n, field: line(base_event(**{field: "x" * n})),
        st.sampled_from([10_000, 1_000_000, (1 << 20) - 300, 1 << 20]),
        st.sampled_from(["brand", "event_id", "extra"]),
    ),
    st.builds(
        lambda literal, field: GOOD.replace(b'"xiaomi"', b"0").replace(
            b'"brand":0', f'"{field}":{literal}'.encode()
        ),
        st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "1" + "0" * 5000, "1" * 4301]),
        st.sampled_from(["brand", "price", "product_id"]),
    ),
    st.builds(
        lambda text, encoding: json.dumps(base_event(brand=text), ensure_ascii=False).encode(
            encoding, "replace"
        ),
        st.text(min_size=1, max_size=10),
        st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "utf-8-sig", "shift_jis"]),
    ),
    st.builds(lambda head, body: b"\x00" + head + body, st.binary(min_size=0, max_size=6), st.just(GOOD)),
    st.builds(lambda i, raw: b"\x00" + i.to_bytes(4, "big") + raw, st.integers(0, 3), st.binary(max_size=50)),
    st.builds(lambda raw, cut: raw[:cut], st.builds(embedded, json_values), st.integers(0, 400)),
    st.builds(
        lambda text: GOOD.replace(b"xiaomi", text.encode("utf-8", "surrogatepass")),
        st.text(alphabet=st.characters(), max_size=12),
    ),
)


def check(validator: Validator, raw: bytes) -> None:
    outcome = validator.validate(raw)
    assert isinstance(outcome, Valid | Invalid)
    if isinstance(outcome, Invalid):
        assert outcome.code in ERROR_CODES
        assert outcome.message
        outcome.message.encode("utf-8")  # printable: no lone surrogates in messages
        assert outcome.raw == raw
    else:
        assert isinstance(json.loads(outcome.payload), dict)
        assert outcome.event_id
    assert validator.validate_precise(raw) == outcome


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(raw=junk)
def test_junk_never_raises_and_always_gets_a_reason(raw: bytes) -> None:
    check(VALIDATOR, raw)
    check(PERMISSIVE, raw)


def test_a_one_megabyte_string_is_fine_below_the_limit_and_too_large_above() -> None:
    below = line(base_event(brand="x" * ((1 << 20) - len(GOOD))))
    assert len(below) <= 1 << 20
    assert VALIDATOR.validate(below).ok
    above = line(base_event(brand="x" * (1 << 20)))
    outcome = VALIDATOR.validate(above)
    assert isinstance(outcome, Invalid) and outcome.code == "too_large"
