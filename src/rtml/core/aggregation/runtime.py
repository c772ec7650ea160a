"""The aggregation runtime of a feature view: apply event batches, read features.

``build_view(view)`` (or ``build([views])`` for several views of one source) returns the
runtime object that owns the state (STYLE.md 4): :class:`ViewAggregator` applies a columnar
:class:`~.batch.EventBatch` with numpy group-bys, answers ``read(key, t_ms)`` exactly as
``rtml.testing.oracle.view_values`` does for every covered ``t``, and exports its state:
``snapshot()``/``restore()`` for the engine's checkpoints and ``state_of(key)``/
``load_state(blob)`` for online stores (one blob per (view, key)).

Clock and coverage. The runtime's clock is its *high-water mark*, the largest event time
applied. From it: ``covered_from = floor(high_water - exact_for, base)`` -- reads at
``t >= covered_from`` are exact, earlier ones raise :class:`~.read.NotCoveredError` -- and
``retained_from = min over aggregations of floor(covered_from - longest window, hop)``:
no covered read needs an older event, so older tiles are evicted and an event older than
that is *dropped* (counted in ``dropped``; the offline store keeps it). Any event at or
after ``retained_from`` is applied, however late, since tiles are mergeable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from rtml.core.aggregation import state as state_codec
from rtml.core.aggregation.batch import Column, EventBatch
from rtml.core.aggregation.delta import Changes
from rtml.core.aggregation.filters import Mask, compile_where
from rtml.core.aggregation.head import HeadSlice, HeadStore
from rtml.core.aggregation.kernels import Inputs
from rtml.core.aggregation.keys import KeyIndex
from rtml.core.aggregation.layout import DEFAULT_EXACT_FOR, HOUR, ViewPlan, level_fields, plan_view
from rtml.core.aggregation.read import check_covered, empty_values, read_values
from rtml.core.aggregation.tiles import Tiles
from rtml.definitions.feature_view import FeatureView


@dataclass(frozen=True)
class Applied:
    """What one ``apply`` did: events applied and dropped (older than retention), and the
    keys it touched (``keys``, made on first use from ``key_ids``)."""

    applied: int
    dropped: int
    key_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    index: KeyIndex | None = field(default=None, repr=False)

    @property
    def keys(self) -> list[Any]:
        known = self.index.keys if self.index is not None else []
        return [known[k] for k in self.key_ids.tolist()]


class ViewAggregator:
    """The live state of one feature view for all its keys."""

    def __init__(self, plan: ViewPlan) -> None:
        self.plan = plan
        self.view = plan.view
        self.fingerprint = plan.view.fingerprint()
        self.join_keys = plan.view.join_keys
        self.index = KeyIndex(len(self.join_keys))
        self.tiles = Tiles(plan.sizes, [level_fields(plan, i) for i in range(len(plan.sizes))])
        self.levels = self.tiles.levels
        self.head = HeadStore(plan)
        self.high_water: int | None = None
        self.covered_from: int | None = None
        self.retained_from: int | None = None
        self.applied = 0
        self.dropped = 0
        self.evicted_at: list[int | None] = [None] * (len(self.levels) + 1)
        self.changes: Changes | None = None  # see track_changes
        self._geometry: dict[Any, Any] = {}  # read_geometry's cache
        self._wheres: dict[int, Mask] = {
            a.index: compile_where(a.aggregation.where_expression)
            for a in plan.aggs
            if a.aggregation.where_expression is not None
        }

    # -- writes -------------------------------------------------------------------------

    def track_changes(self) -> Changes:
        """From now on, record what each batch changes (the engine exports those as deltas)."""
        if self.changes is None:
            self.changes = Changes(len(self.levels))
        return self.changes

    def apply(self, batch: EventBatch) -> Applied:
        """Apply a batch of events (any order, any lateness within retention)."""
        if not len(batch):
            return Applied(0, 0)
        batch_max = int(batch.ts_ms.max())
        high = batch_max if self.high_water is None else max(self.high_water, batch_max)
        covered = self.plan.covered_from(high)
        retained = self.plan.retained_from(covered)
        keep = batch.ts_ms >= retained
        pick = np.flatnonzero(keep)
        dropped = len(batch) - len(pick)
        if len(pick):
            key_ids, _ = self.index.ids_of([batch.col(k).take(pick) for k in self.join_keys])
            ts = batch.ts_ms[pick]
            sort_keys = (batch.eid_order()[pick], ts, key_ids) if self.plan.has_last else (ts, key_ids)
            order = np.lexsort(sort_keys)
            self._apply_sorted(batch, pick[order], key_ids[order], ts[order], covered)
            ordered = key_ids[order]
            touched = ordered[np.flatnonzero(np.append(True, ordered[1:] != ordered[:-1]))]
        else:
            touched = np.zeros(0, dtype=np.int64)
        self.high_water, self.covered_from, self.retained_from = high, covered, retained
        self.applied += len(pick)
        self.dropped += dropped
        self._evict()
        return Applied(len(pick), dropped, touched, self.index)

    def _apply_sorted(
        self, batch: EventBatch, pos: np.ndarray, keys: np.ndarray, ts: np.ndarray, covered: int
    ) -> None:
        eid = batch.event_id[pos]
        cols: dict[str, Column] = {c: batch.col(c).take(pos) for c in self.plan.columns}
        wheres = {i: w(batch)[pos] for i, w in self._wheres.items()}
        every = np.ones(len(pos), dtype=bool)
        inputs: dict[int, Inputs] = {
            a.index: a.kernel.inputs(
                cols[a.aggregation.column] if a.aggregation.column else None,
                wheres.get(a.index, every),
                ts,
                eid,
            )
            for a in self.plan.aggs
        }
        new_key = np.empty(len(keys), dtype=bool)
        new_key[0] = True
        np.not_equal(keys[1:], keys[:-1], out=new_key[1:])
        for i, level in enumerate(self.levels):
            tiles = ts // level.size
            starts_mask = new_key.copy()
            starts_mask[1:] |= tiles[1:] != tiles[:-1]
            starts = np.flatnonzero(starts_mask)
            rows = self.tiles.locate(i, keys[starts], tiles[starts])
            if self.changes is not None:
                self.changes.add_tiles(i, keys[starts], tiles[starts])
            for agg in self.plan.aggs_on(i):
                agg.kernel.merge(level.cols, rows, agg.kernel.reduce(inputs[agg.index], starts))
            if i == 0:
                ends = np.append(starts[1:], len(keys))
                self._append_head(ts, eid, cols, wheres, starts, ends, rows, tiles[starts], covered, keys)

    def _append_head(
        self,
        ts: np.ndarray,
        eid: np.ndarray,
        cols: dict[str, Column],
        wheres: dict[int, np.ndarray],
        starts: np.ndarray,
        ends: np.ndarray,
        rows: np.ndarray,
        tiles: np.ndarray,
        covered: int,
        keys: np.ndarray,
    ) -> None:
        """Keep the events of base tiles at or after ``covered`` one by one."""
        fresh = tiles * self.plan.base >= covered
        if not fresh.any():
            return
        sel = np.flatnonzero(ts >= covered)
        every = np.ones(len(sel), dtype=bool)
        values = {c: col.take(sel).python() for c, col in cols.items()}
        where = {a.index: wheres[a.index][sel] if a.index in wheres else every for a in self.plan.aggs}
        first = self.head.append(ts[sel], eid[sel], values, where)
        if self.changes is not None:
            head = {"ts": ts[sel].tolist(), "eid": eid[sel].tolist()}
            head.update({f"c:{c}": v for c, v in values.items()})
            head.update({f"w:{i}": w.tolist() for i, w in where.items()})
            self.changes.add_head(keys[sel], head)
        lengths = (ends - starts)[fresh]
        seg_starts = first + np.cumsum(lengths) - lengths
        base = self.levels[0].cols
        self.head.link(base.get("h_first"), base.get("h_last"), rows[fresh], seg_starts, lengths)

    def _evict(self) -> None:
        """Evict tiles before ``retained_from`` and head events before ``covered_from``, each
        at most once per hour of event time (per tile size for coarser levels)."""
        assert self.covered_from is not None and self.retained_from is not None
        retention = self.plan.level_retained_from(self.covered_from)
        for i, (level, retained) in enumerate(zip(self.levels, retention, strict=True)):
            last = self.evicted_at[i]
            if last is None or retained - last >= max(level.size, HOUR):
                self.tiles.evict_before(i, retained)
                self.evicted_at[i] = retained
        last = self.evicted_at[-1]
        if last is None or self.covered_from - last >= max(self.plan.base, self.plan.exact_for, 1):
            self._evict_head(self.covered_from)
            self.evicted_at[-1] = self.covered_from

    def level_retained_from(self) -> tuple[int | None, ...]:
        """Per level, the oldest tile start covered reads use (older tiles are evictable)."""
        if self.covered_from is None:
            return (None,) * len(self.levels)
        return self.plan.level_retained_from(self.covered_from)

    def _evict_head(self, covered: int) -> None:
        base = self.levels[0].cols
        first, last = base.get("h_first")[: base.used], base.get("h_last")[: base.used]
        first[(first >= 0) & (base.get("tile")[: base.used] * self.plan.base < covered)] = -1
        last[first < 0] = -1
        if (self.head.cols.get("ts")[: self.head.cols.used] < covered).any():
            self.head.compact(first, last, covered)

    # -- reads --------------------------------------------------------------------------

    def normalize_key(self, key: Any) -> Any:
        """A key as the runtime indexes it: the value for one join key, else a tuple."""
        if isinstance(key, Mapping):
            missing = [k for k in self.join_keys if k not in key]
            if missing:
                raise KeyError(
                    f"view {self.view.name!r} is keyed by {list(self.join_keys)}; missing {missing}"
                )
            values = tuple(key[k] for k in self.join_keys)
        else:
            values = tuple(key) if isinstance(key, tuple | list) else (key,)
        if len(values) != len(self.join_keys):
            raise KeyError(f"view {self.view.name!r} is keyed by {list(self.join_keys)}, got {key!r}")
        return values[0] if len(values) == 1 else values

    def keys(self) -> list[Any]:
        """Every key seen (also those whose tiles have all been evicted since)."""
        return list(self.index.keys)

    def has_key(self, key: Any) -> bool:
        return self.normalize_key(key) in self.index.ids

    def read(self, key: Any, t_ms: int) -> dict[str, Any]:
        """Every feature of the view for ``key`` at ``t_ms`` (events strictly before ``t_ms``).

        An unknown key reads as the empty defaults; a ``t_ms`` before ``covered_from``
        raises :class:`~.read.NotCoveredError`."""
        check_covered(self.plan, t_ms, self.covered_from)
        kid = self.index.ids.get(self.normalize_key(key))
        if kid is None:
            return empty_values(self.plan)
        tiles, head = self.tiles, self.head

        def find(wanted: list[np.ndarray]) -> list[np.ndarray]:
            return tiles.find_many(kid, list(enumerate(wanted)))

        def head_of(row: int) -> HeadSlice | None:
            first = int(self.levels[0].cols.get("h_first")[row]) if row >= 0 else -1
            return None if first < 0 else head.slice(head.rows_from(first), t_ms)

        return read_values(self.plan, find, [lv.cols for lv in self.levels], head_of, t_ms, self._geometry)

    # -- state --------------------------------------------------------------------------

    def state_of(self, key: Any) -> bytes:
        """One key's state as bytes (msgpack), for an online store: read it back with
        :func:`~.state.read_state` or put it in a runtime with :meth:`load_state`."""
        key = self.normalize_key(key)
        return state_codec.export_keys(self, [key])[key]

    def states_of(self, keys: Iterable[Any]) -> dict[Any, bytes]:
        """:meth:`state_of` for many keys at once (one pass over the tiles): what the engine
        writes to the online store after a batch (``Applied.keys``)."""
        return state_codec.export_keys(self, [self.normalize_key(k) for k in keys])

    def load_state(self, blob: bytes) -> None:
        """Replace one key's state by an exported one (``materialize``, tests)."""
        state_codec.import_key(self, blob)

    def snapshot(self) -> bytes:
        """The whole state as bytes, for a checkpoint taken with the log offsets."""
        return state_codec.snapshot(self)

    def restore(self, blob: bytes) -> None:
        """Replace the whole state by a :meth:`snapshot`."""
        state_codec.restore(self, blob)
        if self.changes is not None:
            self.changes.clear()


class Aggregator:
    """The runtimes of several views of one source, fed the same batches."""

    def __init__(self, views: Iterable[ViewAggregator]) -> None:
        self.views = {v.view.name: v for v in views}

    def __getitem__(self, view: str) -> ViewAggregator:
        return self.views[view]

    def apply(self, batch: EventBatch) -> dict[str, Applied]:
        return {name: v.apply(batch) for name, v in self.views.items()}

    def read(self, view: str, key: Any, t_ms: int) -> dict[str, Any]:
        return self.views[view].read(key, t_ms)

    def snapshot(self) -> bytes:
        return state_codec.encode_many({name: v.snapshot() for name, v in self.views.items()})

    def restore(self, blob: bytes) -> None:
        parts = state_codec.decode_many(blob)
        for name, part in parts.items():
            if name in self.views:
                self.views[name].restore(part)


def build_view(
    view: FeatureView, *, exact_for: timedelta = DEFAULT_EXACT_FOR, resume: bytes | None = None
) -> ViewAggregator:
    """The runtime of one view; ``exact_for``: how far before the newest event reads stay exact."""
    runtime = ViewAggregator(plan_view(view, exact_for=exact_for))
    if resume is not None:
        runtime.restore(resume)
    return runtime


def build(
    views: FeatureView | Sequence[FeatureView],
    *,
    exact_for: timedelta = DEFAULT_EXACT_FOR,
    resume: bytes | None = None,
) -> Aggregator:
    """The runtime of one or several views (of one source)."""
    listed = [views] if isinstance(views, FeatureView) else list(views)
    runtime = Aggregator(build_view(v, exact_for=exact_for) for v in listed)
    if resume is not None:
        runtime.restore(resume)
    return runtime
