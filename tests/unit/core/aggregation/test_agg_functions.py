"""The partial aggregates, one event at a time (the reference), and the vectorized kernels
held to them."""

from __future__ import annotations

import random
from functools import reduce
from typing import Any

import numpy as np
import pytest

from rtml.core.aggregation.batch import column
from rtml.core.aggregation.functions import function_for
from rtml.core.aggregation.kernels import kernel_for

# (function, column?, values in event order as (value, ts, event id), expected result)
CASES: list[tuple[str, str | None, list[tuple[Any, int, str]], Any]] = [
    ("count", None, [], 0),
    ("count", None, [(None, 1, "a"), (2, 2, "b")], 2),
    ("count", "x", [(None, 1, "a"), (2, 2, "b")], 1),
    ("sum", "x", [], 0),
    ("sum", "x", [(None, 1, "a")], 0),
    ("sum", "x", [(1, 1, "a"), (2, 2, "b"), (None, 3, "c")], 3),
    ("sum", "x", [(1, 1, "a"), (2.5, 2, "b")], 3.5),
    ("mean", "x", [], None),
    ("mean", "x", [(None, 1, "a")], None),
    ("mean", "x", [(1, 1, "a"), (2, 2, "b"), (None, 3, "c")], 1.5),
    ("min", "x", [], None),
    ("min", "x", [(3, 1, "a"), (None, 2, "b"), (-1.5, 3, "c")], -1.5),
    ("max", "x", [(3, 1, "a"), (None, 2, "b"), (-1.5, 3, "c")], 3),
    ("max", "x", [(None, 1, "a")], None),
    ("last", "x", [], None),
    ("last", "x", [(1, 5, "a"), (2, 3, "b")], 1),  # latest by time, not by arrival
    ("last", "x", [(1, 5, "a"), (2, 5, "b")], 2),  # tie: the larger event id
    ("last", "x", [(1, 5, "b"), (2, 5, "a")], 1),
    ("last", "x", [(1, 4, "a"), (None, 5, "b")], None),  # NULL included
    ("count_distinct", "x", [], 0),
    ("count_distinct", "x", [(1, 1, "a"), (1, 2, "b"), (None, 3, "c"), (2, 4, "d")], 2),
    ("count_distinct", "x", [(1, 1, "a"), (1.0, 2, "b")], 1),  # as Python's set: 1 == 1.0
    ("count_distinct", "x", [("p", 1, "a"), ("q", 2, "b"), ("p", 3, "c")], 2),
]


@pytest.mark.parametrize(("function", "col", "events", "expected"), CASES)
def test_reference_partials(
    function: str, col: str | None, events: list[tuple[Any, int, str]], expected: Any
) -> None:
    fn = function_for(function, col)
    acc = fn.init()
    for value, ts, eid in events:
        acc = fn.update(acc, value, ts, eid)
    assert fn.result(acc) == expected
    # any split merges to the same result, in either order
    for cut in range(len(events) + 1):
        left = reduce(lambda a, e: fn.update(a, *e), events[:cut], fn.init())
        right = reduce(lambda a, e: fn.update(a, *e), events[cut:], fn.init())
        assert fn.result(fn.merge(left, right)) == expected
        assert fn.result(fn.merge(right, left)) == expected


def test_unknown_function_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown aggregation function"):
        function_for("median", "x")


def _kernel_result(
    function: str, col: str | None, events: list[tuple[Any, int, str]], groups: int, seed: int
) -> Any:
    """Reduce ``events`` in ``groups`` random groups, merge them into tiles in random order,
    then finish over the tiles."""
    kernel = kernel_for("0.", function, col)
    rng = random.Random(seed)
    # events sorted by (ts, eid) within groups, as the runtime sorts them
    ordered = sorted(events, key=lambda e: (e[1], e[2]))
    cuts = (
        sorted(rng.sample(range(1, len(ordered)), min(groups - 1, len(ordered) - 1)))
        if len(ordered) > 1
        else []
    )
    starts = np.asarray([0, *cuts], dtype=np.int64)
    ts = np.asarray([e[1] for e in ordered], dtype=np.int64)
    eid = np.asarray([e[2] for e in ordered], dtype=object)
    if not ordered:
        return kernel.finish([])
    values = column([e[0] for e in ordered])
    inputs = kernel.inputs(values if col else None, np.ones(len(ordered), bool), ts, eid)
    part = kernel.reduce(inputs, starts)

    class Store:
        arrays = {
            kernel.name(f): np.full(len(starts), empty, dtype=dtype)
            for f, (dtype, empty) in kernel.fields.items()
        }

        def get(self, name: str) -> np.ndarray:
            return self.arrays[name]

        def promote(self, name: str, dtype: Any) -> np.ndarray:
            arr = self.arrays[name]
            wanted = np.result_type(arr.dtype, dtype)
            if wanted != arr.dtype:
                arr = self.arrays[name] = arr.astype(wanted)
            return arr

    store = Store()
    rows = np.arange(len(starts), dtype=np.int64)
    perm = np.asarray(rng.sample(range(len(starts)), len(starts)), dtype=np.int64)
    # merge the groups' partials into empty tiles, in a random order
    kernel.merge(store, rows[perm], {f: v[perm] for f, v in part.items()})
    tiles = {f: store.get(kernel.name(f)) for f in kernel.fields}
    return kernel.finish([tiles])


@pytest.mark.parametrize(("function", "col", "events", "expected"), CASES)
@pytest.mark.parametrize("groups", [1, 2, 5])
def test_kernels_match_the_reference(
    function: str, col: str | None, events: list[tuple[Any, int, str]], expected: Any, groups: int
) -> None:
    assert _kernel_result(function, col, events, groups, seed=groups) == expected


@pytest.mark.parametrize("function", ["count", "sum", "mean", "min", "max", "last", "count_distinct"])
def test_kernels_match_the_reference_on_random_events(function: str) -> None:
    rng = random.Random(function)
    for trial in range(30):
        kind = rng.choice(["int", "float"])
        events = [
            (
                None
                if rng.random() < 0.2
                else (rng.randrange(-5, 5) if kind == "int" else rng.uniform(-5, 5)),
                rng.randrange(0, 20),
                f"e{rng.randrange(100)}-{i}",
            )
            for i in range(rng.randrange(0, 40))
        ]
        fn = function_for(function, "x")
        want = fn.result(reduce(lambda a, e: fn.update(a, *e), events, fn.init()))
        got = _kernel_result(function, "x", events, rng.randrange(1, 8), seed=trial)
        if isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
        else:
            assert got == want and type(got) is type(want), (events, got, want)
