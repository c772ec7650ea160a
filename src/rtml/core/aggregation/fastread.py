"""A compiled read of one view's key states: the values of chosen features at ``t``.

:class:`FastStateReader` answers what :class:`~rtml.core.aggregation.StateReader` answers
(the same values: integers exactly, floats up to summation order), for the features a read
asks for only, with plain Python over the decoded state's lists instead of numpy arrays
per tile range: a key's state holds a few tiles per level and a few head events, where a
numpy call costs more than the work. What is resolved once, not per read:

* per feature, its aggregation's kernel, field names and head columns (the *plan*);
* per read time, the tile ranges of every window (``read_geometry``, cached per geometry);
* per stored blob, the decoded state: an LRU of ``cache_size`` states keyed by the blob's
  bytes (equal bytes decode to the same state, so a hit is exact; the value at ``t`` is
  computed on every read, only the decoding is saved).

``last`` is read by the general reader (its order rules are kept in one place); so is a key
whose head holds values that are not numbers where a numeric function reads them (the
general reader raises the error).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from rtml.core.aggregation.kernels import (
    CountKernel,
    DistinctKernel,
    ExtremeKernel,
    Kernel,
    MeanKernel,
    SumKernel,
)
from rtml.core.aggregation.layout import ViewPlan, plan_view
from rtml.core.aggregation.read import check_covered, empty_values, read_geometry
from rtml.core.aggregation.state import KEY_VERSION, KeyState, StateReader, _check, decode_key
from rtml.definitions.feature_view import FeatureView

DEFAULT_CACHE = 1024  # decoded states kept per view (0: none)
COUNT, SUM, MEAN, EXTREME, DISTINCT = range(5)
_KINDS: dict[type[Kernel], int] = {
    CountKernel: COUNT,
    SumKernel: SUM,
    MeanKernel: MEAN,
    ExtremeKernel: EXTREME,
    DistinctKernel: DISTINCT,
}
_NUMBER = (int, float, bool)


class _General(Exception):
    """This key is read by the general reader."""


@dataclass(frozen=True)
class _Agg:
    kind: int
    fields: tuple[str, ...]  # the kernel's stored field names, in kernel order
    where: str  # head column of its where result
    column: str | None  # head column of its value column
    counts_nulls: bool  # count without a column
    largest: bool  # max (not min)


@dataclass(frozen=True)
class _Compiled:
    """A read plan for the times of one geometry: the head's start, per level the tile
    boundaries the chosen features' ranges use (sorted), per feature its aggregation and
    ranges ``(level, index of first, index of last)`` into those boundaries."""

    head_from: int
    bounds: tuple[tuple[int, list[int]], ...]
    ops: tuple[tuple[_Agg, tuple[tuple[int, int, int], ...]], ...]


class FastStateReader:
    """Values of ``features`` (default: all, in definition order) of ``view`` from one key's
    stored state; see the module's docstring."""

    def __init__(
        self, view: FeatureView, features: Sequence[str] | None = None, *, cache_size: int = DEFAULT_CACHE
    ) -> None:
        self.plan = plan = plan_view(view)
        self.fingerprint = view.fingerprint()
        order = [(name, agg) for agg in plan.aggs for name, _ in agg.features]
        position = {name: i for i, (name, _) in enumerate(order)}
        self.features = tuple(features) if features is not None else tuple(n for n, _ in order)
        unknown = [f for f in self.features if f not in position]
        if unknown:
            raise KeyError(f"feature view {view.name!r} has no features {unknown}")
        defaults = empty_values(plan)
        self.defaults = [defaults[f] for f in self.features]
        self._aggs = [_compile(a.kernel, a.index) for a in plan.aggs]
        self._ops = [(position[f], order[position[f]][1].index) for f in self.features]
        self._general = StateReader(view) if any(a is None for a in self._aggs) else None
        self._fallback: StateReader | None = None
        self._geometry: dict[Any, Any] = {}
        self._span: tuple[int, int, Any] = (0, 0, None)  # [from, to): the read plan of those t
        self._cache: OrderedDict[bytes, KeyState] = OrderedDict()
        self.cache_size = cache_size

    def decode(self, blob: bytes) -> KeyState:
        """The state of ``blob`` (from the cache when the same bytes were decoded lately;
        shared: not to be changed). Safe from several threads: each step of the cache is
        one operation under the GIL, and a lost race only decodes again."""
        if not self.cache_size or type(blob) is not bytes:
            return decode_key(blob)
        cache = self._cache
        state = cache.get(blob)
        if state is not None:
            with suppress(KeyError):  # another thread may have evicted it meanwhile
                cache.move_to_end(blob)
            return state
        state = decode_key(blob)
        cache[blob] = state
        while len(cache) > self.cache_size:
            with suppress(KeyError):
                cache.popitem(last=False)
        return state

    def read(self, blob: bytes, t_ms: int) -> list[Any]:
        """The chosen features' values at ``t_ms``, in order."""
        return self.read_state(self.decode(blob), t_ms)

    def read_state(self, state: KeyState, t_ms: int) -> list[Any]:
        plan = self.plan
        _check(plan.view.name, self.fingerprint, state.fingerprint, state.version, KEY_VERSION)
        check_covered(plan, t_ms, state.covered_from)
        if self._general is not None:
            return self._by_general(self._general, state, t_ms)
        try:
            return self._values(state, t_ms)
        except _General:
            if self._fallback is None:
                self._fallback = StateReader(plan.view)
            return self._by_general(self._fallback, state, t_ms)

    def _by_general(self, reader: StateReader, state: KeyState, t_ms: int) -> list[Any]:
        values = reader.read_state(state, t_ms)
        return [values[f] for f in self.features]

    def _compiled(self, t_ms: int) -> _Compiled:
        """The read plan of ``t_ms``'s geometry (kept while reads stay in its time span)."""
        span = self._span
        if span[0] <= t_ms < span[1]:
            return span[2]
        per_feature, _, head_tile = read_geometry(self.plan, t_ms, self._geometry)
        bounds: list[list[int]] = [[] for _ in self.plan.sizes]
        for pos, _index in self._ops:
            for level, first, last in per_feature[pos]:
                bounds[level] += (first, last)
        bounds = [sorted(set(b)) for b in bounds]
        where = [{x: i for i, x in enumerate(b)} for b in bounds]
        ops = []
        for pos, index in self._ops:
            agg = self._aggs[index]
            assert agg is not None  # (a view with another function is read by the general reader)
            ranges = tuple((lv, where[lv][first], where[lv][last]) for lv, first, last in per_feature[pos])
            ops.append((agg, ranges))
        compiled = _Compiled(head_tile * self.plan.base, tuple(enumerate(bounds)), tuple(ops))
        self._span = (*_constant_around(self.plan, t_ms), compiled)
        return compiled

    def _values(self, state: KeyState, t_ms: int) -> list[Any]:
        compiled = self._compiled(t_ms)
        tiles, fields, head = state.tiles, state.fields, state.head
        times = head.get("ts") or ()
        a = bisect_left(times, compiled.head_from)
        b = bisect_left(times, t_ms, a)
        # per level, where each boundary of the plan falls in the key's tiles (None: no tiles)
        at: list[list[int] | None] = []
        for level, bounds in compiled.bounds:
            have = tiles[level]
            at.append([bisect_left(have, x) for x in bounds] if have and bounds else None)
        out: list[Any] = []
        head_counts: dict[str, int] = {}  # per aggregation (its where column), its head events counted
        for agg, ranges in compiled.ops:
            kind = agg.kind
            if kind == COUNT:  # the common cases first, summed without a list of spans
                name = agg.fields[0]
                n = 0
                for level, first, last in ranges:
                    rows = at[level]
                    if rows is not None:
                        i, j = rows[first], rows[last]
                        if i < j:
                            n += sum(fields[level][name][i:j])
                if b > a:
                    counted = head_counts.get(agg.where)
                    if counted is None:
                        counted = head_counts[agg.where] = _head_count(head, agg, a, b)
                    n += counted
                out.append(n)
                continue
            if kind == MEAN:
                s_name, n_name = agg.fields
                s: Any = 0
                n = 0
                for level, first, last in ranges:
                    rows = at[level]
                    if rows is not None:
                        i, j = rows[first], rows[last]
                        if i < j:
                            level_fields = fields[level]
                            s += sum(level_fields[s_name][i:j])
                            n += sum(level_fields[n_name][i:j])
                if b > a:
                    hs, hn = _head_numbers(head, agg, a, b)[:2]
                    s += sum(hs)
                    n += hn
                out.append(s / n if n else None)
                continue
            # the rows of each aggregated tile range: (level, i, j) with tiles[level][i:j] in range
            spans = []
            for level, first, last in ranges:
                rows = at[level]
                if rows is not None:
                    i, j = rows[first], rows[last]
                    if i < j:
                        spans.append((level, i, j))
            if kind == SUM:
                name = agg.fields[0]
                s = 0
                floats = False
                for level, i, j in spans:
                    values = fields[level][name]
                    s += sum(values[i:j])
                    floats = floats or _has_float(values)
                if b > a:
                    hs, _, head_floats = _head_numbers(head, agg, a, b)
                    s += sum(hs)
                    floats = floats or head_floats
                out.append(float(s) if floats else s)
            elif kind == EXTREME:
                out.append(_extreme(agg, spans, fields, head, a, b))
            else:
                name = agg.fields[0]
                seen: set[Any] = set()
                for level, i, j in spans:
                    for values in fields[level][name][i:j]:
                        if values is not None:
                            seen.update(values)
                if b > a:
                    column = head[agg.column][a:b]  # type: ignore[index]
                    seen.update(
                        v for v, w in zip(column, head[agg.where][a:b], strict=True) if w and v is not None
                    )
                out.append(len(seen))
        return out


def _constant_around(plan: ViewPlan, t_ms: int) -> tuple[int, int]:
    """The times ``[lo, hi)`` around ``t_ms`` whose reads have ``t_ms``'s geometry: the same
    head tile and the same window starts ``floor(t - w, hop)``."""
    lo = (t_ms // plan.base) * plan.base
    hi = lo + plan.base
    for agg in plan.aggs:
        for _, window in agg.features:
            start = ((t_ms - window) // agg.hop) * agg.hop
            lo, hi = max(lo, start + window), min(hi, start + agg.hop + window)
    return lo, hi


def _compile(kernel: Kernel, index: int) -> _Agg | None:
    kind = _KINDS.get(type(kernel))
    if kind is None:
        return None
    return _Agg(
        kind=kind,
        fields=tuple(kernel.name(f) for f in kernel.fields),
        where=f"w:{index}",
        column=None if kernel.column is None else f"c:{kernel.column}",
        counts_nulls=kernel.column is None,
        largest=kernel.function == "max",
    )


def _head_count(head: dict[str, list[Any]], agg: _Agg, a: int, b: int) -> int:
    where = head[agg.where][a:b]
    if agg.counts_nulls:
        return sum(1 for w in where if w)
    column = head[agg.column][a:b]  # type: ignore[index]
    return sum(1 for v, w in zip(column, where, strict=True) if w and v is not None)


def _head_numbers(head: dict[str, list[Any]], agg: _Agg, a: int, b: int) -> tuple[list[Any], int, bool]:
    """The head's counted values (bools as ints), their count, and whether the column (all
    its values in the slice, as the general reader types it) is float."""
    column = head[agg.column][a:b]  # type: ignore[index]
    floats = False
    for v in column:
        if v is None:
            continue
        kind = type(v)
        if kind is float:
            floats = True
        elif kind not in _NUMBER:
            raise _General
    values = [
        int(v) if type(v) is bool else v
        for v, w in zip(column, head[agg.where][a:b], strict=True)
        if w and v is not None
    ]
    return values, len(values), floats


def _has_float(values: list[Any]) -> bool:
    """Whether a level's stored column is float (the general reader makes it one array)."""
    return any(type(v) is float for v in values)


def _extreme(
    agg: _Agg,
    spans: list[tuple[int, int, int]],
    fields: list[dict[str, list[Any]]],
    head: Any,
    a: int,
    b: int,
) -> Any:
    """``min``/``max``: each part's best (typed as its array), then the best of them."""
    pick = max if agg.largest else min
    v_name, n_name = agg.fields
    best = []
    for level, i, j in spans:
        values = fields[level][v_name]
        found = [v for v, n in zip(values[i:j], fields[level][n_name][i:j], strict=True) if n > 0]
        if found:
            top = pick(found)
            best.append(float(top) if _has_float(values) else top)
    if b > a:
        hv, hn, floats = _head_numbers(head, agg, a, b)
        if hn:
            top = pick(hv)
            best.append(float(top) if floats else top)
    return pick(best) if best else None
