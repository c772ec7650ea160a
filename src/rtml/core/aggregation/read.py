"""Reading a key's features at ``t`` from its tiles and head: the one read path.

The runtime (all keys in shared tables) and a single key's exported state
(:mod:`.state`) both answer through :func:`read_values`; only the way they find a key's
tile rows (``find``, one call per read for every tile of every feature) and head events differ.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rtml.core.aggregation.head import HeadSlice
from rtml.core.aggregation.kernels import Part, Store
from rtml.core.aggregation.layout import ViewPlan, decompose
from rtml.errors import RtmlError

# tile indices to look up, per level -> the row of each (-1: none), per level
Find = Callable[[list[np.ndarray]], list[np.ndarray]]
# the level-0 row of the read's head tile (-1: none) -> the head events before t, if any
HeadOf = Callable[[int], HeadSlice | None]


class NotCoveredError(RtmlError):
    """A read asked for a time the state no longer holds exactly."""

    http_status = 422


def check_covered(plan: ViewPlan, t_ms: int, covered_from: int | None) -> None:
    if covered_from is not None and t_ms < covered_from:
        raise NotCoveredError(
            f"feature view {plan.view.name!r} can be read exactly from {covered_from} ms on "
            f"(its state keeps the last {plan.exact_for} ms of events one by one), not at {t_ms}. "
            "Fix: read at a later time, build the runtime with a longer exact_for, "
            "or compute past values offline (rtml dataset build)"
        )


def empty_values(plan: ViewPlan) -> dict[str, Any]:
    """Every feature's value with no event: 0 for count/count_distinct/sum, else ``None``."""
    return {name: a.kernel.finish([]) for a in plan.aggs for name, _ in a.features}


# The tiles a read at ``t`` uses depend on ``t`` only through the window starts and the
# head's base tile, the same for every key: a reader keeps them per such "geometry".
Geometry = tuple[list[list[tuple[int, int, int]]], list[np.ndarray], int]
GEOMETRY_CACHE = 64


def read_geometry(plan: ViewPlan, t_ms: int, cache: dict[Any, Geometry] | None = None) -> Geometry:
    """Per feature (in plan order) its aligned tile ranges ``(level, first, last)``; per
    level the sorted tile indices any feature may use (level 0: also the head's tile); the
    head's base tile."""
    end = (t_ms // plan.base) * plan.base
    starts = tuple(((t_ms - window) // agg.hop) * agg.hop for agg in plan.aggs for _, window in agg.features)
    key = (end, starts)
    if cache is not None:
        found = cache.get(key)
        if found is not None:
            return found
    spans: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    per_feature: list[list[tuple[int, int, int]]] = []
    at = 0
    for agg in plan.aggs:
        for _ in agg.features:
            start = starts[at]
            at += 1
            if (start, agg.levels) not in spans:
                spans[(start, agg.levels)] = decompose(start, end, plan.sizes[: agg.levels])
            per_feature.append(spans[(start, agg.levels)])
    head_tile = end // plan.base
    intervals: list[list[tuple[int, int]]] = [[(head_tile, head_tile + 1)]] + [[] for _ in plan.sizes[1:]]
    for ranges in spans.values():
        for level, first, last in ranges:
            intervals[level].append((first, last))
    geometry = (per_feature, [_union(iv) for iv in intervals], head_tile)
    if cache is not None:
        if len(cache) >= GEOMETRY_CACHE:
            cache.clear()
        cache[key] = geometry
    return geometry


def read_values(
    plan: ViewPlan,
    find: Find,
    columns: Sequence[Store],
    head_of: HeadOf,
    t_ms: int,
    cache: dict[Any, Geometry] | None = None,
) -> dict[str, Any]:
    """Every feature of ``plan``'s view at ``t_ms`` for one key (``cache``: a dict the
    caller keeps for :func:`read_geometry`)."""
    per_feature, wanted, head_tile = read_geometry(plan, t_ms, cache)
    have: list[tuple[list[int], np.ndarray]] = []
    for tiles, rows in zip(wanted, find(wanted), strict=True):
        present = rows >= 0
        have.append((tiles[present].tolist(), rows[present]))

    def rows_in(level: int, first: int, last: int) -> np.ndarray:
        tiles, rows = have[level]
        return rows[bisect_left(tiles, first) : bisect_left(tiles, last)]

    head_row = rows_in(0, head_tile, head_tile + 1)
    head = head_of(int(head_row[0]) if len(head_row) else -1)
    out: dict[str, Any] = {}
    at = 0
    for agg in plan.aggs:
        kernel = agg.kernel
        head_part = _head_part(agg.index, kernel, head)
        for name, _ in agg.features:
            ranges = per_feature[at]
            at += 1
            parts: list[Part] = []
            for level, first, last in ranges:
                if not have[level][0]:
                    continue
                r = rows_in(level, first, last)
                if len(r):
                    parts.append({f: columns[level].get(kernel.name(f))[r] for f in kernel.fields})
            if head_part is not None:
                parts.append(head_part)
            out[name] = kernel.finish(parts)
    return out


def _union(intervals: list[tuple[int, int]]) -> np.ndarray:
    """The sorted tile indices of a union of ``[first, last)`` ranges."""
    merged: list[list[int]] = []
    for first, last in sorted(intervals):
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    if not merged:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in merged])


def _head_part(index: int, kernel: Any, head: HeadSlice | None) -> Part | None:
    if head is None or not len(head):
        return None
    col = head.columns.get(kernel.column) if kernel.column is not None else None
    inputs = kernel.inputs(col, head.where[index], head.ts, head.eid)
    part: Part = kernel.reduce(inputs, np.zeros(1, dtype=np.int64))
    return part
