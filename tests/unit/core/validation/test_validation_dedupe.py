"""Deduper: drops repeated ids within the horizon, forgets older ones, survives a restart."""

from __future__ import annotations

import json

import pytest

from rtml.core.validation import Deduper
from rtml.errors import InvalidInputError

MINUTE = 60_000


def test_a_repeated_id_is_a_duplicate() -> None:
    d = Deduper(horizon="1h")
    assert [d.is_duplicate(i, t) for i, t in [("a", 0), ("b", 10), ("a", 20), ("a", 30)]] == [
        False, False, True, True,
    ]  # fmt: skip
    assert d.duplicates == 2 and len(d) == 2


def test_an_id_is_remembered_for_the_horizon_then_forgotten() -> None:
    d = Deduper(horizon="10m")
    d.is_duplicate("a", 0)
    d.is_duplicate("b", 10 * MINUTE)  # a is exactly one horizon old: still remembered
    assert "a" in d
    d.is_duplicate("c", 11 * MINUTE)  # now a is past the horizon (and its bucket)
    assert "a" not in d and "b" in d
    assert not d.is_duplicate("a", 0)  # too old to be remembered again
    assert "a" not in d


def test_out_of_order_events_within_the_horizon_are_caught() -> None:
    d = Deduper(horizon="1h")
    for i, t in enumerate([50, 10, 30, 20]):
        assert not d.is_duplicate(f"id{i}", t * MINUTE)
    assert d.is_duplicate("id1", 10 * MINUTE)
    assert d.is_duplicate("id1", 70 * MINUTE)  # the copy's own time does not matter


def test_memory_is_bounded_by_max_ids() -> None:
    d = Deduper(horizon="1d", max_ids=1000)
    for i in range(10_000):
        d.is_duplicate(f"id{i}", i * 1000)
        assert len(d) <= 1000
    assert "id9999" in d and "id0" not in d


def test_snapshot_and_restore_through_json() -> None:
    d = Deduper(horizon="30m", max_ids=500)
    for i in range(300):
        d.is_duplicate(f"id{i % 200}", i * 10_000)
    restored = Deduper.restore(json.loads(json.dumps(d.snapshot())))
    assert restored.snapshot() == d.snapshot()
    for i in range(300, 400):
        event_id, t = f"id{i % 250}", i * 10_000
        assert restored.is_duplicate(event_id, t) == d.is_duplicate(event_id, t)
    assert len(restored) == len(d) and restored.duplicates == d.duplicates


def test_bad_arguments_and_snapshots_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        Deduper(horizon="0s")
    with pytest.raises(InvalidInputError):
        Deduper(max_ids=0)
    with pytest.raises(InvalidInputError):
        Deduper.restore({"version": 99})
