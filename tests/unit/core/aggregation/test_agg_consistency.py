"""The runtime against the brute-force oracle, with the hard cases; and its state round trips."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from agg_cases import (
    DAY,
    HOUR,
    MIN,
    PRODUCT,
    T0,
    USER,
    Oracle,
    batch,
    batches,
    diff,
    every_function_view,
    hard_events,
    sample_times,
    view,
)

from rtml.core.aggregation import (
    EventBatch,
    NotCoveredError,
    StaleStateError,
    StateReader,
    ViewAggregator,
    build,
    build_view,
    decode_key,
    empty_values,
)
from rtml.definitions import Aggregation
from rtml.errors import InvalidInputError

LONG = timedelta(days=60)  # keeps every event in the exact head: every t is covered


def _check(rt: ViewAggregator, oracle: Oracle, rows: list[dict[str, Any]], seed: int, n: int = 250) -> int:
    rng = random.Random(seed)
    keys = list(oracle.by_key)
    heavy = max(keys, key=lambda k: len(oracle.by_key[k]))
    checked = 0
    for t in sample_times(rows, rt.view, rng, n):
        key = heavy if rng.random() < 0.3 else rng.choice(keys)
        if rt.covered_from is not None and t < rt.covered_from:
            continue
        got, want = rt.read(key, t), oracle.read(key, t)
        assert not diff(got, want), (key, t, diff(got, want))
        checked += 1
    return checked


@pytest.mark.parametrize("order", ["time", "shuffled"])
@pytest.mark.parametrize("size", [1_000_000, 487, 64])
@pytest.mark.parametrize(("hop_short", "hop_long"), [("1m", "1h"), ("5m", "1h"), ("1m", "15m")])
def test_every_function_equals_the_oracle(order: str, size: int, hop_short: str, hop_long: str) -> None:
    v = every_function_view(hop_short=hop_short, hop_long=hop_long)
    rows = hard_events(seed=size % 97, n=2500)
    if order == "time":
        rows.sort(key=lambda r: r["ts_ms"])
    else:
        random.Random(size).shuffle(rows)
    rt = build_view(v, exact_for=LONG)
    for b in batches(rows, size):
        rt.apply(b)
    assert rt.applied == len(rows) and rt.dropped == 0
    assert _check(rt, Oracle(v, rows), rows, seed=size) > 200


def test_a_key_with_thousands_of_events_and_keys_with_one() -> None:
    v = every_function_view()
    rows = hard_events(seed=11, n=6000)
    oracle = Oracle(v, rows)
    counts = sorted(len(e) for e in oracle.by_key.values())
    assert counts[0] == 1 and counts[-1] >= 1500
    rt = build_view(v, exact_for=LONG)
    rt.apply(batch(rows))
    _check(rt, oracle, rows, seed=3, n=200)


def test_reads_at_the_default_coverage_while_streaming() -> None:
    """Default exact head (10 min): after each batch, reads from ``covered_from`` on are exact,
    earlier ones are refused; late events inside retention still count."""
    v = every_function_view()
    rows = sorted(hard_events(seed=5, n=3000), key=lambda r: r["ts_ms"])
    rng = random.Random(9)
    for r in rows:  # a share arrives late: 1 min to 2 days behind its neighbours
        if rng.random() < 0.1:
            r["ts_ms"] = max(T0, r["ts_ms"] - rng.choice([MIN, HOUR, 2 * DAY]))
    rt = build_view(v)
    oracle_rows: list[dict[str, Any]] = []
    for b_rows in [rows[i : i + 300] for i in range(0, len(rows), 300)]:
        rt.apply(batch(b_rows))
        oracle_rows += b_rows
        oracle = Oracle(v, oracle_rows)
        assert rt.covered_from is not None and rt.high_water is not None
        for _ in range(25):
            key = rng.choice(list(oracle.by_key))
            t = rt.covered_from + rng.choice([0, 1, rng.randrange(0, 3 * HOUR)])
            got, want = rt.read(key, t), oracle.read(key, t)
            assert not diff(got, want), (key, t, diff(got, want))
        with pytest.raises(NotCoveredError, match="exact_for"):
            rt.read(key, rt.covered_from - 1)
    assert len(rt.head.cols.get("ts")[: rt.head.cols.used]) < len(rows) / 2  # the head was evicted


def test_events_older_than_retention_are_dropped_and_counted() -> None:
    v = view(Aggregation(function="count", windows=["1h"], hop="1m", name="n"))
    rt = build_view(v)
    rows = [{"ts_ms": T0 + 10 * DAY, "event_id": "new", "user_id": 1}]
    rt.apply(batch(rows))
    old = [{"ts_ms": T0 + 10 * DAY - 2 * HOUR, "event_id": "old", "user_id": 1},
           {"ts_ms": T0 + 10 * DAY - 30 * MIN, "event_id": "late", "user_id": 1}]  # fmt: skip
    applied = rt.apply(batch(old))
    assert (applied.applied, applied.dropped) == (1, 1)
    assert (rt.applied, rt.dropped) == (2, 1)
    assert rt.read(1, T0 + 10 * DAY + 1) == {"n_1h": 2}  # the same as the oracle: the old one is outside


def test_batch_split_invariance() -> None:
    """One batch or many, in any order: the same reads and the same exported states."""
    v = every_function_view()
    rows = hard_events(seed=2, n=1500)
    shuffled = rows[:]
    random.Random(4).shuffle(shuffled)
    one = build_view(v)
    one.apply(batch(sorted(rows, key=lambda r: r["ts_ms"])))
    many = build_view(v)
    for b in batches(shuffled, 7):
        many.apply(b)
    assert one.covered_from == many.covered_from
    keys = sorted({r["user_id"] for r in rows})
    for key in keys:
        a, b = decode_key(one.state_of(key)), decode_key(many.state_of(key))
        assert a.tiles == b.tiles and a.head == b.head
        for fa, fb in zip(a.fields, b.fields, strict=True):
            for name in fa:
                for x, y in zip(fa[name], fb[name], strict=True):
                    assert x == y or x == pytest.approx(y, rel=1e-9), (key, name)
        t = one.covered_from + 17 if one.covered_from is not None else T0
        assert not diff(one.read(key, t), many.read(key, t))


def test_snapshot_restore_round_trip() -> None:
    v = every_function_view()
    rows = sorted(hard_events(seed=8, n=2000), key=lambda r: r["ts_ms"])
    first, rest = rows[:1200], rows[1200:]
    rt = build_view(v)
    rt.apply(batch(first))
    blob = rt.snapshot()
    copy = build_view(v, resume=blob)
    assert copy.snapshot() == blob
    for b in batches(rest, 100):
        rt.apply(b)
        copy.apply(b)
    assert rt.covered_from is not None
    keys = sorted({r["user_id"] for r in rows})
    for key in keys:
        for t in (rt.covered_from, rt.covered_from + 61_001, rt.high_water or 0):
            assert rt.read(key, t) == copy.read(key, t)
    assert copy.applied == rt.applied == len(rows)


def test_state_blobs_read_like_the_runtime_and_load_back() -> None:
    v = every_function_view()
    rows = hard_events(seed=12, n=2000)
    rt = build_view(v)
    for b in batches(rows, 250):
        rt.apply(b)
    reader = StateReader(v)
    fresh = build_view(v)
    keys = sorted({r["user_id"] for r in rows}) + [123456]  # and a key without events
    blobs = rt.states_of(keys)
    assert covered(rt) and blobs[keys[0]] == rt.state_of(keys[0])
    for key in keys:
        fresh.load_state(blobs[key])
    for key in keys:
        for t in (rt.covered_from, rt.covered_from + 1, (rt.high_water or 0) + HOUR):
            want = rt.read(key, t)
            assert reader.read(blobs[key], t) == want
            assert fresh.read(key, t) == want
        with pytest.raises(NotCoveredError):
            reader.read(blobs[key], rt.covered_from - 1)
    assert rt.read(123456, rt.covered_from) == empty_values(rt.plan)


def covered(rt: ViewAggregator) -> bool:
    return rt.covered_from is not None


def test_stale_state_is_detected() -> None:
    v1 = view(Aggregation(function="count", windows=["1h"], name="n"))
    v2 = view(Aggregation(function="count", windows=["2h"], name="n"))
    rt = build_view(v1)
    rt.apply(batch([{"ts_ms": T0, "event_id": "a", "user_id": 1}]))
    with pytest.raises(StaleStateError, match="backfill"):
        StateReader(v2).read(rt.state_of(1), T0 + 1)
    with pytest.raises(StaleStateError, match="backfill"):
        build_view(v2, resume=rt.snapshot())


def test_multi_key_view_with_string_and_null_keys() -> None:
    v = view(
        Aggregation(function="count", windows=["5m", "1h", "1d"], name="n"),
        Aggregation(function="last", column="event_type", windows=["1d"], name="last_type"),
        entities=[USER, PRODUCT],
        name="pair",
    )
    rows = hard_events(seed=21, n=1500)
    for i, r in enumerate(rows):
        if i % 3 == 0:
            r["user_id"] = f"u{r['user_id']}"  # string keys
    rt = build_view(v, exact_for=LONG)
    for b in batches(rows, 200):
        rt.apply(b)
    oracle = Oracle(v, rows)
    rng = random.Random(0)
    for t in sample_times(rows, v, rng, 200):
        key = rng.choice(list(oracle.by_key))
        assert not diff(rt.read(key, t), oracle.read(key, t)), (key, t)
    key = next(iter(oracle.by_key))
    t = rows[0]["ts_ms"] + 1
    assert rt.read(dict(zip(v.join_keys, key, strict=True)), t) == rt.read(list(key), t)
    with pytest.raises(KeyError, match="keyed by"):
        rt.read({"user_id": 1}, t)


def test_several_views_share_batches_and_report_touched_keys() -> None:
    a = every_function_view(name="a")
    b = view(Aggregation(function="count", windows=["1h"], name="n"), entities=[PRODUCT], name="b")
    rt = build([a, b])
    rows = hard_events(seed=30, n=400)
    done = rt.apply(batch(rows))
    assert sorted(done["a"].keys) == sorted({r["user_id"] for r in rows})
    kept = [r for r in rows if r["ts_ms"] >= (rt["b"].retained_from or 0)]  # b keeps 1 h + a hop
    assert done["b"].dropped == len(rows) - len(kept) > 0
    assert sorted(done["b"].keys, key=repr) == sorted({r["product_id"] for r in kept}, key=repr)
    copy = build([a, b], resume=rt.snapshot())
    t = max(r["ts_ms"] for r in rows)
    assert copy.read("b", 10, t) == rt.read("b", 10, t)
    assert copy["a"].read(1, t) == rt["a"].read(1, t)


def test_empty_batch_and_unknown_key() -> None:
    v = every_function_view()
    rt = build_view(v)
    assert rt.apply(EventBatch.from_rows([])).applied == 0
    values = rt.read(42, T0)
    assert values["n_1h"] == 0 and values["avg_15m"] is None and values["products_1h"] == 0
    assert not rt.has_key(42)


def test_integer_columns_stay_exact_until_a_float_arrives() -> None:
    v = view(
        Aggregation(function="sum", column="qty", windows=["1h"], name="s"),
        Aggregation(function="max", column="qty", windows=["1h"], name="m"),
    )
    rt = build_view(v, exact_for=LONG)
    big = 2**60
    rt.apply(batch([{"ts_ms": T0, "event_id": "a", "user_id": 1, "qty": big}]))
    rt.apply(batch([{"ts_ms": T0 + 1, "event_id": "b", "user_id": 1, "qty": 3}]))
    assert rt.read(1, T0 + MIN) == {"s_1h": big + 3, "m_1h": big}  # int64, exact
    rt.apply(batch([{"ts_ms": T0 + 2, "event_id": "c", "user_id": 1, "qty": 0.5}]))
    got = rt.read(1, T0 + MIN)
    assert got["s_1h"] == pytest.approx(big + 3.5, rel=1e-12) and isinstance(got["s_1h"], float)


def test_a_numeric_function_over_text_is_refused() -> None:
    v = view(Aggregation(function="sum", column="qty", windows=["1h"], name="s"))
    rt = build_view(v)
    with pytest.raises(InvalidInputError, match="needs numbers"):
        rt.apply(batch([{"ts_ms": T0, "event_id": "a", "user_id": 1, "qty": "three"}]))


def test_evicted_rows_are_reused_without_mixing_tiles() -> None:
    """Short windows over many days: tiles are evicted and their rows reused again and again."""
    v = view(
        Aggregation(function="count", windows=["5m", "1h"], hop="1m", name="n"),
        Aggregation(function="count_distinct", column="product_id", windows=["10m"], name="products"),
        Aggregation(function="last", column="qty", windows=["1h"], name="last_qty"),
    )
    rows = sorted(hard_events(seed=40, n=4000, span_ms=10 * DAY), key=lambda r: r["ts_ms"])
    rt = build_view(v)
    rng = random.Random(2)
    seen: list[dict[str, Any]] = []
    for b_rows in [rows[i : i + 200] for i in range(0, len(rows), 200)]:
        rt.apply(batch(b_rows))
        seen += b_rows
        oracle = Oracle(v, seen[-600:])  # older events are outside every covered window
        assert rt.covered_from is not None
        for key in rng.sample(list(oracle.by_key), 5):
            t = rt.covered_from + rng.randrange(0, HOUR)
            assert not diff(rt.read(key, t), oracle.read(key, t)), (key, t)
    assert rt.levels[0].cols.used < len(rows)  # rows were reused
