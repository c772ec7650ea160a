"""Where a view's partial aggregates live: levels of tiles, the exact head, coverage.

A view's state is a pyramid of tile levels. Level 0's tile size, the *base*, is the gcd
of the view's hops (1 minute for the example); the coarser levels are the calendar sizes
1 s, 1 min, 1 h, 1 d that the previous size divides and that fit twice into the longest
window (then x16 steps while a window still spans more than 128 top tiles). An
aggregation keeps tiles on level 0 and on every level that fits twice into its own
longest window. Events of the base tiles not older than ``covered_from`` are also kept one
by one (the *head*), so that the partial base tile ``[floor(t, base), t)`` of a read is exact.

A read of window ``w`` with hop ``h`` at ``t`` covers ``[A, t)``, ``A = floor(t - w, h)``:
``[A, floor(t, base))`` is cut into the fewest aligned tiles (:func:`decompose`), the rest
comes from the head. See docs/features.md for the picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import reduce
from math import gcd
from typing import Any

import numpy as np

from rtml.core.aggregation.kernels import Kernel, kernel_for
from rtml.definitions.feature_view import Aggregation, FeatureView

SECOND, MINUTE, HOUR, DAY = 1_000, 60_000, 3_600_000, 86_400_000
CALENDAR = (SECOND, MINUTE, HOUR, DAY)
FILL_FACTOR = 16  # coarser levels past a day, for very long windows
MAX_TOP_TILES = 128
DEFAULT_EXACT_FOR = timedelta(minutes=10)


def ms(span: timedelta) -> int:
    return int(span / timedelta(milliseconds=1))


def level_sizes(hops: list[int], longest: int) -> tuple[int, ...]:
    """Tile sizes (ms) of the levels, finest first; each divides the next."""
    sizes = [reduce(gcd, hops)]
    for size in CALENDAR:
        if size > sizes[-1] and size % sizes[-1] == 0 and 2 * size <= longest:
            sizes.append(size)
    while longest // sizes[-1] > MAX_TOP_TILES:
        sizes.append(sizes[-1] * FILL_FACTOR)
    return tuple(sizes)


def decompose(start: int, end: int, sizes: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """``[start, end)`` (both multiples of ``sizes[0]``) as the fewest aligned tiles:
    ``(level, first tile index, last tile index + 1)`` ranges."""
    if start >= end:
        return []
    top = len(sizes) - 1
    size = sizes[top]
    if top == 0:
        return [(0, start // size, end // size)]
    first, last = -(-start // size) * size, (end // size) * size
    if first >= last:
        return decompose(start, end, sizes[:top])
    return [
        *decompose(start, first, sizes[:top]),
        (top, first // size, last // size),
        *decompose(last, end, sizes[:top]),
    ]


@dataclass(frozen=True)
class AggPlan:
    """One aggregation of a view: its kernel, hop, levels and features."""

    index: int
    aggregation: Aggregation
    kernel: Kernel
    hop: int
    levels: int  # it keeps tiles on levels 0 .. levels - 1
    features: tuple[tuple[str, int], ...]  # (feature name, window ms)

    @property
    def longest(self) -> int:
        return max(w for _, w in self.features)


@dataclass(frozen=True)
class ViewPlan:
    """The layout of one view's state (pure arithmetic, no state)."""

    view: FeatureView
    sizes: tuple[int, ...]
    aggs: tuple[AggPlan, ...]
    exact_for: int  # ms of head kept before the high-water mark
    columns: tuple[str, ...]  # value columns the aggregations read
    has_last: bool

    @property
    def base(self) -> int:
        return self.sizes[0]

    def covered_from(self, high_water: int) -> int:
        """The earliest read time that is exact once events up to ``high_water`` are in."""
        return ((high_water - self.exact_for) // self.base) * self.base

    def retained_from(self, covered_from: int) -> int:
        """The oldest event time any covered read needs: ``min floor(covered - w, h)``."""
        return min(((covered_from - a.longest) // a.hop) * a.hop for a in self.aggs)

    def level_retained_from(self, covered_from: int) -> tuple[int, ...]:
        """Per level, the oldest tile start a covered read uses. An aggregation reads a level
        below its top one only at the head end -- after ``floor(covered, next size)`` --
        when its hop is a multiple of the next size (its window start is then aligned)."""
        out = []
        for level in range(len(self.sizes)):
            needs = []
            for a in self.aggs_on(level):
                if level < a.levels - 1 and a.hop % self.sizes[level + 1] == 0:
                    nxt = self.sizes[level + 1]
                    needs.append((covered_from // nxt) * nxt)
                else:
                    needs.append(((covered_from - a.longest) // a.hop) * a.hop)
            out.append(min(needs))
        return tuple(out)

    def aggs_on(self, level: int) -> tuple[AggPlan, ...]:
        return tuple(a for a in self.aggs if a.levels > level)


def level_fields(plan: ViewPlan, level: int) -> dict[str, tuple[Any, Any]]:
    """The columns of a level's tile table: each aggregation's partial, and on level 0 the
    head's chain of segments (``h_first``, ``h_last``)."""
    fields = {a.kernel.name(f): spec for a in plan.aggs_on(level) for f, spec in a.kernel.fields.items()}
    if level == 0:
        fields["h_first"] = (np.int64, -1)
        fields["h_last"] = (np.int64, -1)
    return fields


def plan_view(view: FeatureView, *, exact_for: timedelta = DEFAULT_EXACT_FOR) -> ViewPlan:
    if exact_for < timedelta(0):
        raise ValueError(f"exact_for must not be negative, got {exact_for}")
    hops = [ms(a.hop_span) for a in view.aggregations]
    longest = max(ms(f.window) for f in view.features)
    sizes = level_sizes(hops, longest)
    aggs: list[AggPlan] = []
    for i, agg in enumerate(view.aggregations):
        features = tuple((f.name, ms(f.window)) for f in view.features if f.aggregation is agg)
        own_longest = max(w for _, w in features)
        levels = 1 + sum(1 for s in sizes[1:] if 2 * s <= own_longest)
        kernel = kernel_for(f"{i}.", agg.function, agg.column)
        aggs.append(AggPlan(i, agg, kernel, ms(agg.hop_span), levels, features))
    columns = tuple(sorted({a.column for a in view.aggregations if a.column is not None}))
    return ViewPlan(
        view=view,
        sizes=sizes,
        aggs=tuple(aggs),
        exact_for=ms(exact_for),
        columns=columns,
        has_last=any(a.function == "last" for a in view.aggregations),
    )
