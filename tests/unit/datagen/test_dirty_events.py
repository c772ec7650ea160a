"""Dirty events: every kind appears with its share, and the summary adds up."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from rtml.datagen import dirty
from rtml.datagen.ecommerce import Generation, generate
from rtml.timeutil import parse_timestamp, to_millis

N = 40_000
RATE = 0.05
TYPES = {"view", "cart", "remove_from_cart", "purchase"}


@pytest.fixture(scope="module")
def stream() -> Generation:
    return generate(N, seed=11, dirty_rate=RATE)


def classify(line: bytes, horizon_ms: int) -> tuple[str, dict[str, Any] | None]:
    """What a validator would say about one line (a small stand-in for the real one)."""
    try:
        event = json.loads(line)
    except ValueError:
        return "broken_json", None
    if any(name not in event for name in dirty.REQUIRED_FIELDS):
        return "missing_field", None
    if event["event_type"] not in TYPES:
        return "unknown_event_type", None
    if not isinstance(event["product_id"], int) or not isinstance(event["price"], int | float):
        return "wrong_type", None
    if event["price"] < 0:
        return "negative_price", None
    try:
        t = to_millis(parse_timestamp(event["event_time"]))
    except ValueError:
        return "bad_timestamp", None
    if t > horizon_ms:
        return "future_timestamp", None
    event["t"] = t
    return "valid", event


def test_each_kind_has_its_share_and_the_counts_add_up(stream: Generation) -> None:
    s = stream.summary
    assert s.produced == N == len(stream.lines)
    assert s.valid + s.invalid + s.duplicates == s.produced
    assert s.last_event_time is not None
    horizon = to_millis(s.last_event_time) + 86_400_000
    found: Counter[str] = Counter()
    seen: set[str] = set()
    running_max = 0
    for line in stream.lines:
        kind, event = classify(line, horizon)
        if event is None:
            found[kind] += 1
            continue
        if event["event_id"] in seen:
            found["duplicate"] += 1
            continue
        seen.add(event["event_id"])
        found["valid"] += 1
        if event["t"] < running_max:
            found["out_of_order"] += 1
        running_max = max(running_max, event["t"])
    assert found["valid"] == s.valid
    assert found["duplicate"] == s.duplicates
    assert found["out_of_order"] == s.out_of_order
    for kind in dirty.INVALID_KINDS:
        assert found[kind] == s.kinds[kind], kind
    assert sum(found[k] for k in dirty.INVALID_KINDS) == s.invalid
    total_dirty = N * RATE
    for kind, share in dirty.DIRTY_SHARES.items():
        assert s.kinds[kind] > 0, kind
        assert s.kinds[kind] == pytest.approx(total_dirty * share, abs=1), kind


def test_duplicates_are_byte_exact_copies_sent_later(stream: Generation) -> None:
    first_at: dict[bytes, int] = {}
    repeats = 0
    for k, line in enumerate(stream.lines):
        if line in first_at:
            repeats += 1
            assert first_at[line] < k
        else:
            first_at[line] = k
    assert repeats == stream.summary.duplicates


def test_invalid_events_are_extra_and_leave_the_truth_alone(stream: Generation) -> None:
    clean = generate(N, seed=11, dirty_rate=0.0)
    valid_ids = {json.loads(line)["event_id"] for line in clean.lines}
    assert stream.summary.last_event_time is not None
    horizon = to_millis(stream.summary.last_event_time) + 86_400_000
    invalid_with_id = 0
    for line in stream.lines:
        kind, _ = classify(line, horizon)
        if kind == "valid":
            assert json.loads(line)["event_id"] in valid_ids
        elif kind not in {"broken_json", "missing_field"}:
            invalid_with_id += 1
            assert json.loads(line)["event_id"] not in valid_ids  # fresh ids: extra events
    assert invalid_with_id > 0
    n = len(stream.truth)
    assert [r.probability for r in stream.truth] == [r.probability for r in clean.truth[:n]]
    assert [r.label for r in stream.truth[: n // 2]] == [r.label for r in clean.truth[: n // 2]]


def test_dirty_rate_zero_gives_a_clean_stream() -> None:
    g = generate(2000, seed=1, dirty_rate=0.0)
    assert g.summary.invalid == g.summary.duplicates == g.summary.out_of_order == 0
    assert g.summary.valid == g.summary.produced == 2000


@pytest.mark.parametrize("n, rate", [(1000, 0.03), (12345, 0.07), (10, 0.5), (7, 0.0)])
def test_planned_counts_add_up(n: int, rate: float) -> None:
    counts = dirty.plan_counts(n, rate)
    assert set(counts) == set(dirty.DIRTY_SHARES)
    assert sum(counts.values()) == round(n * rate)
    assert all(c >= 0 for c in counts.values())


@pytest.mark.parametrize("n", [1, 2, 3, 5, 17])
@pytest.mark.parametrize("rate", [0.0, 0.03, 0.5])
def test_tiny_streams_add_up(n: int, rate: float) -> None:
    s = generate(n, seed=n, dirty_rate=rate).summary
    assert s.produced == n
    assert s.valid + s.invalid + s.duplicates == n
