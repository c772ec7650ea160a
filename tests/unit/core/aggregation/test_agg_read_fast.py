"""The compiled reader (``FastStateReader``) gives what the general ``StateReader`` gives, on
random states (full and delta-appended blobs) at random covered times: integers and None
exactly (type included), floats within 1e-9 relative."""

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
    batch,
    batches,
    close,
    every_function_view,
    hard_events,
    view,
)

from rtml.core.aggregation import NotCoveredError, StaleStateError, StateReader, build, build_view
from rtml.core.aggregation.fastread import FastStateReader
from rtml.definitions import Aggregation

NO_LAST = [a for a in every_function_view().aggregations if a.function != "last"]


def _same(fast: FastStateReader, general: StateReader, blob: bytes, t: int) -> int:
    want = general.read(blob, t)
    got = dict(zip(fast.features, fast.read(blob, t), strict=True))
    bad = {
        f: (got[f], want[f])
        for f in fast.features
        if not close(got[f], want[f]) or type(got[f]) is not type(want[f])
    }
    assert not bad, (t, bad)
    return len(got)


def _times(rt: Any, rng: random.Random, n: int) -> list[int]:
    assert rt.covered_from is not None and rt.high_water is not None
    lo, hi = rt.covered_from, rt.high_water
    fixed = [lo, lo + 1, hi, hi + 1, hi + MIN, hi + HOUR, hi + DAY, (hi // HOUR + 1) * HOUR]
    return fixed + [rng.randrange(lo, hi + 2 * HOUR) for _ in range(n)]


@pytest.mark.parametrize("with_last", [False, True])
@pytest.mark.parametrize("seed", [1, 2])
def test_fast_reader_equals_the_general_one_on_random_states(seed: int, with_last: bool) -> None:
    v = every_function_view() if with_last else view(*NO_LAST, name="no_last")
    rows = hard_events(seed=seed, n=2500, span_ms=2 * DAY)
    rt = build_view(v, exact_for=timedelta(minutes=30))
    for b in batches(rows, 300):
        rt.apply(b)
    general, fast = StateReader(v), FastStateReader(v)
    rng = random.Random(seed)
    keys = rt.keys()
    blobs = rt.states_of(keys)
    compared = 0
    for t in _times(rt, rng, 25):
        for key in keys:
            compared += _same(fast, general, blobs[key], t)
    assert compared > 1000


def test_fast_reader_on_delta_appended_blobs() -> None:
    from rtml.backends.online_store.memory import MemoryOnlineStore
    from rtml.services.engine.stores import OnlineWriter, as_key, touched_keys

    by_user = view(*NO_LAST, name="by_user")
    views = [by_user, view(*NO_LAST, name="by_product", entities=[PRODUCT])]
    runtime = build(views, exact_for=timedelta(minutes=10))
    store = MemoryOnlineStore()
    writer = OnlineWriter(store, runtime, incremental=True)
    rows = sorted(hard_events(seed=5, n=1500, span_ms=6 * HOUR), key=lambda r: r["ts_ms"])
    for r in rows[len(rows) // 2 :: 5]:  # a later float among integers: the folded tiles mix them
        r["qty"] = None if r["qty"] is None else r["qty"] + 0.5
    rng = random.Random(5)
    readers = {v.name: (FastStateReader(v), StateReader(v)) for v in views}
    compared = 0
    for i, b in enumerate(batches(rows, 40)):
        writer.write(touched_keys(runtime, b, runtime.apply(b)))
        if i % 9 != 4:
            continue
        for name, rt in runtime.views.items():
            fast, general = readers[name]
            keys = rt.keys()
            for blob in store.read(name, [as_key(k) for k in keys]):
                assert blob is not None
                for t in _times(rt, rng, 2):
                    compared += _same(fast, general, blob, t)
    assert compared > 1000


def test_chosen_features_in_their_order_and_the_cache_stays_exact() -> None:
    v = view(*NO_LAST, name="some")
    rows = hard_events(seed=9, n=800, span_ms=DAY)
    rt = build_view(v, exact_for=timedelta(hours=1))
    for b in batches(rows, 100):
        rt.apply(b)
    general = StateReader(v)
    chosen = ["qty_1d", "n_5m", "avg_15m", "products_1h"]
    fast = FastStateReader(v, chosen, cache_size=2)
    assert fast.defaults == [0, 0, None, 0]
    keys = rt.keys()
    blobs = rt.states_of(keys)
    assert rt.high_water is not None
    for t in (rt.high_water + 1, rt.high_water + 7 * MIN, rt.high_water + 3 * HOUR):
        for key in keys * 2:  # the second pass decodes from the cache where it still holds the blob
            want = general.read(blobs[key], t)
            got = fast.read(blobs[key], t)
            assert all(close(g, want[f]) for g, f in zip(got, chosen, strict=True)), (key, t)
    assert len(fast._cache) <= 2


def test_integers_stay_exact_and_floats_stay_float() -> None:
    v = view(
        Aggregation(function="sum", column="qty", windows=["1h", "1d"], name="s"),
        Aggregation(function="max", column="qty", windows=["1h", "1d"], name="m"),
        Aggregation(function="min", column="qty", windows=["1h"], name="lo"),
    )
    rt = build_view(v, exact_for=timedelta(hours=2))
    big = 2**60
    rt.apply(batch([{"ts_ms": T0, "event_id": "a", "user_id": 1, "qty": big}]))
    rt.apply(batch([{"ts_ms": T0 + 2 * MIN, "event_id": "b", "user_id": 1, "qty": 3}]))
    fast, general = FastStateReader(v), StateReader(v)
    blob = rt.state_of(1)
    got = dict(zip(fast.features, fast.read(blob, T0 + 3 * MIN), strict=True))
    assert got == general.read(blob, T0 + 3 * MIN)
    assert got["s_1h"] == big + 3 and type(got["s_1h"]) is int
    rt.apply(batch([{"ts_ms": T0 + 4 * MIN, "event_id": "c", "user_id": 1, "qty": 0.5}]))
    blob = rt.state_of(1)
    for t in (T0 + 3 * MIN, T0 + 5 * MIN, T0 + 90 * MIN):
        want = general.read(blob, t)
        got = dict(zip(fast.features, fast.read(blob, t), strict=True))
        assert {f: type(x) for f, x in got.items()} == {f: type(x) for f, x in want.items()}
        assert all(close(got[f], want[f]) for f in want)


def test_errors_are_the_general_readers() -> None:
    v1 = view(Aggregation(function="count", windows=["1h"], name="n"))
    v2 = view(Aggregation(function="count", windows=["2h"], name="n"))
    rt = build_view(v1)
    rt.apply(batch([{"ts_ms": T0, "event_id": "a", "user_id": 1}]))
    blob = rt.state_of(1)
    with pytest.raises(StaleStateError):
        FastStateReader(v2).read(blob, T0 + 1)
    assert rt.covered_from is not None
    with pytest.raises(NotCoveredError):
        FastStateReader(v1).read(blob, rt.covered_from - 1)
    with pytest.raises(KeyError):
        FastStateReader(v1, ["nope"])
