"""Key states written once in full, then as appended deltas: reads of the stored blob equal
the runtime's at every covered time, however the batches fall (the engine's writer)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from agg_cases import HOUR, MIN, PRODUCT, batches, every_function_view, hard_events, view

from rtml.backends.online_store.memory import MemoryOnlineStore
from rtml.core.aggregation import StaleStateError, StateReader, build
from rtml.core.aggregation.delta import MAGIC, BrokenStateError, split_frames
from rtml.core.aggregation.state import decode_key
from rtml.services.engine import stores
from rtml.services.engine.stores import OnlineWriter, as_key, touched_keys


def _stream(seed: int, n: int, late: bool) -> list[dict[str, Any]]:
    rows = hard_events(seed=seed, n=n, span_ms=6 * HOUR)
    rows.sort(key=lambda r: r["ts_ms"])
    if late:  # a tenth arrive up to 20 minutes late: late tiles and head events, drops
        rng = random.Random(seed)
        for i in range(len(rows) - 1, 0, -1):
            if rng.random() < 0.1:
                j = max(0, i - rng.randrange(1, 400))
                rows[i], rows[j] = rows[j], rows[i]
    return rows


def _check_reads(store: MemoryOnlineStore, runtime: Any, names: list[str], rng: random.Random) -> int:
    checked = 0
    for name in names:
        rt = runtime[name]
        reader = StateReader(rt.view)
        keys = rt.keys()
        blobs = store.read(name, [as_key(k) for k in keys])
        assert rt.high_water is not None and rt.covered_from is not None
        times = [rt.covered_from, rt.covered_from + 1, rt.high_water, rt.high_water + 1, rt.high_water + HOUR]
        times += [rng.randrange(rt.covered_from, rt.high_water + 2 * MIN) for _ in range(6)]
        for key, blob in zip(keys, blobs, strict=True):
            assert blob is not None, (name, key)
            for t in times:
                assert reader.read(blob, t) == rt.read(key, t), (name, key, t)
                checked += 1
    return checked


@pytest.mark.parametrize("late", [False, True])
@pytest.mark.parametrize("size", [7, 60, 500])
def test_appended_deltas_read_like_the_runtime(
    monkeypatch: pytest.MonkeyPatch, late: bool, size: int
) -> None:
    monkeypatch.setattr(stores, "MIN_REWRITE", 600)  # full rewrites happen too
    by_user = every_function_view("by_user")
    views = [by_user, view(*by_user.aggregations, name="by_product", entities=[PRODUCT])]
    runtime = build(views, exact_for=timedelta(minutes=10))
    store = MemoryOnlineStore()
    writer = OnlineWriter(store, runtime, incremental=True)
    rng = random.Random(size)
    frames_seen: list[int] = []
    for i, b in enumerate(batches(_stream(size, 1500, late), size)):
        applied = runtime.apply(b)
        writer.write(touched_keys(runtime, b, applied))
        if i % 37 == 5:
            assert _check_reads(store, runtime, list(runtime.views), rng) > 0
    assert _check_reads(store, runtime, list(runtime.views), rng) > 0
    for name, rt in runtime.views.items():
        for blob in store.read(name, [as_key(k) for k in rt.keys()]):
            assert blob is not None and blob.startswith(MAGIC)
            frames_seen.append(len(split_frames(blob)))
    assert max(frames_seen) > 1  # deltas were appended
    if size < 500:
        assert max(frames_seen) < 60  # and full states rewritten once the deltas grew


def test_a_new_writer_writes_each_key_in_full_first() -> None:
    """A restarted engine's first write of a key replaces what a crashed run appended."""
    v = every_function_view("by_user")
    runtime = build([v])
    store = MemoryOnlineStore()
    rows = _stream(3, 400, late=False)
    parts = batches(rows, 50)
    writer = OnlineWriter(store, runtime, incremental=True)
    for b in parts[:4]:
        writer.write(touched_keys(runtime, b, runtime.apply(b)))
    key = rows[0]["user_id"]
    store.write(
        "by_user", {as_key(key): store.read("by_user", [as_key(key)])[0] + b"\x00\x00\x00\x09garbage!!"}
    )
    with pytest.raises(msgspec.DecodeError):
        decode_key(store.read("by_user", [as_key(key)])[0] or b"")
    again = OnlineWriter(store, runtime, incremental=True)
    again.write({"by_user": [key]})
    blob = store.read("by_user", [as_key(key)])[0]
    assert blob is not None and len(split_frames(blob)) == 1
    t = (runtime["by_user"].high_water or 0) + 1
    assert StateReader(v).read(blob, t) == runtime.read("by_user", key, t)


def test_states_of_the_old_format_and_cut_blobs_are_refused_with_the_fix() -> None:
    v = every_function_view("by_user")
    runtime = build([v])
    rows = _stream(4, 200, late=False)
    for b in batches(rows, 100):
        runtime.apply(b)
    key = rows[0]["user_id"]
    blob = runtime["by_user"].state_of(key)
    state = decode_key(blob)
    state.version = 1
    old = msgspec.msgpack.encode(state)  # format 1: a bare msgpack KeyState
    with pytest.raises(StaleStateError, match="rtml materialize"):
        StateReader(v).read(old, (runtime["by_user"].high_water or 0) + 1)
    with pytest.raises(BrokenStateError, match="rtml materialize"):
        StateReader(v).read(blob[:-3], (runtime["by_user"].high_water or 0) + 1)
    with pytest.raises(BrokenStateError, match="rtml materialize"):
        StateReader(v).read(b"\x00\x00\x00\x05hello", 0)
