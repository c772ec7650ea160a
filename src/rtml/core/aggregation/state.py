"""Aggregation state as bytes: one key for online stores, the whole runtime for checkpoints.

Both are msgpack (msgspec), versioned and stamped with the view's fingerprint; a state
written by another definition of the view raises :class:`StaleStateError` (the fix is a
backfill).

* **One key** (:class:`KeyState`, ``ViewAggregator.state_of(key)``): the key's tiles that a
  covered read may use (``ViewPlan.level_retained_from``; per level, the tile indices and
  the partials' fields as lists), and its head events at or after ``covered_from``, sorted
  by (time, event id). An online store keeps one blob per (view, key) and answers with
  :class:`StateReader`, exact for any ``t >= covered_from``. The blob is canonical: the
  same events applied in other batches give the same blob (floating sums aside, which may
  differ in the last bits).
* **The runtime** (``snapshot()``): the tile tables' columns as raw numpy bytes (object
  columns as lists), the key list and the clock; restoring rebuilds the tile index.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from rtml.core.aggregation import delta as frames
from rtml.core.aggregation.head import HeadSlice, make_slice
from rtml.core.aggregation.layout import level_fields, plan_view
from rtml.core.aggregation.read import check_covered, read_values
from rtml.definitions.feature_view import FeatureView
from rtml.errors import RtmlError

if TYPE_CHECKING:
    from rtml.core.aggregation.runtime import ViewAggregator

VERSION = 1  # of the runtime's snapshot
KEY_VERSION = 2  # of one key's state (2: frames, a full state then deltas, see .delta)
_RESERVED = ("key", "tile", "h_first", "h_last")


class StaleStateError(RtmlError):
    """Stored aggregation state was built from another definition of the view."""

    http_status = 409


class KeyState(msgspec.Struct, kw_only=True):
    version: int
    view: str
    fingerprint: str
    key: Any
    high_water: int | None
    covered_from: int | None
    retained_from: int | None
    tiles: list[list[int]]  # per level, ascending tile indices
    fields: list[dict[str, list[Any]]]  # per level, field -> value per tile
    head: dict[str, list[Any]]  # "ts", "eid", "c:<column>", "w:<aggregation>"


class Snapshot(msgspec.Struct, kw_only=True):
    version: int
    view: str
    fingerprint: str
    exact_for: int
    high_water: int | None
    covered_from: int | None
    retained_from: int | None
    applied: int
    dropped: int
    evicted: list[int | None]
    keys: list[Any]
    levels: list[dict[str, tuple[str, Any]]]
    head: dict[str, tuple[str, Any]]


_encoder = msgspec.msgpack.Encoder()


def _check(plan_view_name: str, expected: str, found: str, version: int, wanted: int = VERSION) -> None:
    if version != wanted:
        raise StaleStateError(
            f"state of view {plan_view_name!r} has format version {version}, this rtml reads {wanted}. "
            "Fix: run `rtml materialize` to rebuild the online store (stop the engine first)"
        )
    if found != expected:
        raise StaleStateError(
            f"stored state of view {plan_view_name!r} was built by another definition "
            f"(fingerprint {found}, now {expected}). Fix: run `rtml backfill` to rebuild it"
        )


def _plain(values: list[Any], name: str) -> list[Any]:
    """Distinct-value tuples as sorted lists (a canonical form), other values as they are."""
    if not name.endswith(".set"):
        return values
    return [None if s is None else _sorted(s) for s in values]


def _sorted(values: tuple[Any, ...]) -> list[Any]:
    unique = set(values)
    try:
        return sorted(unique)
    except TypeError:
        return sorted(unique, key=repr)


def _array(values: list[Any], name: str, dtype: Any) -> np.ndarray:
    if np.dtype(dtype) != object:
        return np.asarray(values) if values else np.zeros(0, dtype=dtype)
    out = np.empty(len(values), dtype=object)
    if name.endswith(".set"):
        values = [None if v is None else tuple(v) for v in values]
    for i, v in enumerate(values):
        out[i] = v
    return out


# -- one key ------------------------------------------------------------------------------


def export_keys(rt: ViewAggregator, keys: list[Any]) -> dict[Any, bytes]:
    """The state of each key (a key without events gets an empty state)."""
    known = [(k, rt.index.ids[k]) for k in keys if k in rt.index.ids]
    kids = np.asarray([i for _, i in known], dtype=np.int64)
    retained, covered = rt.retained_from, rt.covered_from
    by_level: list[dict[int, np.ndarray]] = []
    for level, level_retained in zip(rt.levels, rt.level_retained_from(), strict=True):
        rows = level.rows_of_keys(kids, level_retained) if len(kids) else np.zeros(0, dtype=np.int64)
        by_level.append(_split_by_key(level.cols.get("key")[rows], rows))
    base = rt.levels[0]
    first, tile = base.cols.get("h_first"), base.cols.get("tile")
    out: dict[Any, bytes] = {}
    for key in keys:
        kid = rt.index.ids.get(key)
        tiles: list[list[int]] = []
        fields: list[dict[str, list[Any]]] = []
        for level, rows_by_key in zip(rt.levels, by_level, strict=True):
            rows = (
                rows_by_key.get(kid, np.zeros(0, dtype=np.int64))
                if kid is not None
                else np.zeros(0, np.int64)
            )
            tiles.append(level.cols.get("tile")[rows].tolist())
            names = [n for n in level.cols.arrays if n not in _RESERVED]
            fields.append({n: _plain(level.cols.get(n)[rows].tolist(), n) for n in names})
        head: dict[str, list[Any]] = {n: [] for n in rt.head.cols.arrays if not n.startswith("seg_")}
        mine = by_level[0].get(kid) if kid is not None else None
        if mine is not None:
            heads = mine[(first[mine] >= 0) & (covered is None or tile[mine] * base.size >= covered)]
            if len(heads):
                head = rt.head.lists(np.concatenate([rt.head.rows_from(int(first[r])) for r in heads]))
        state = KeyState(
            version=KEY_VERSION,
            view=rt.view.name,
            fingerprint=rt.fingerprint,
            key=list(key) if isinstance(key, tuple) else key,
            high_water=rt.high_water,
            covered_from=covered,
            retained_from=retained,
            tiles=tiles,
            fields=fields,
            head=head,
        )
        out[key] = encode_key_state(state)
    return out


def encode_key_state(state: KeyState) -> bytes:
    """A full key state's blob (format 2: the first frame; deltas may be appended)."""
    return frames.full_blob(_encoder.encode(state))


def _split_by_key(keys: np.ndarray, rows: np.ndarray) -> dict[int, np.ndarray]:
    if not len(rows):
        return {}
    cuts = np.flatnonzero(np.diff(keys)) + 1
    return {
        int(part_keys[0]): part
        for part_keys, part in zip(np.split(keys, cuts), np.split(rows, cuts), strict=True)
    }


_key_decoder = msgspec.msgpack.Decoder(KeyState)
_delta_decoder = msgspec.msgpack.Decoder(frames.KeyDelta)


def decode_key(blob: bytes) -> KeyState:
    """A stored key state, its appended deltas folded in."""
    if not blob.startswith(frames.MAGIC):
        try:  # format 1 (one msgpack KeyState) or not a state at all
            old = msgspec.msgpack.decode(blob, type=KeyState)
        except msgspec.DecodeError:
            raise frames.BrokenStateError(
                "a stored feature state is not an rtml state. Fix: run `rtml materialize` to rebuild "
                "the online store"
            ) from None
        return old  # its version (1) is refused by the reader's check
    parts = frames.split_frames(blob)
    state = _key_decoder.decode(parts[0])
    return frames.fold(state, [_delta_decoder.decode(p) for p in parts[1:]])


class StateReader:
    """Feature values from one key's exported state (an online store's read path)."""

    def __init__(self, view: FeatureView) -> None:
        self.plan = plan_view(view)
        self.fingerprint = view.fingerprint()
        self.specs = [level_fields(self.plan, i) for i in range(len(self.plan.sizes))]
        self._geometry: dict[Any, Any] = {}

    def read(self, blob: bytes, t_ms: int) -> dict[str, Any]:
        return self.read_state(decode_key(blob), t_ms)

    def read_state(self, state: KeyState, t_ms: int) -> dict[str, Any]:
        plan = self.plan
        _check(plan.view.name, self.fingerprint, state.fingerprint, state.version, KEY_VERSION)
        check_covered(plan, t_ms, state.covered_from)
        tile_arrays = [np.asarray(t, dtype=np.int64) for t in state.tiles]
        columns = [_Local(f, self.specs[i]) for i, f in enumerate(state.fields)]

        def find(wanted: list[np.ndarray]) -> list[np.ndarray]:
            out = []
            for have, tiles in zip(tile_arrays, wanted, strict=True):
                if not len(have):
                    out.append(np.full(len(tiles), -1, dtype=np.int64))
                    continue
                at = np.minimum(np.searchsorted(have, tiles), len(have) - 1)
                out.append(np.where(have[at] == tiles, at, -1))
            return out

        def head_of(row: int) -> HeadSlice | None:
            return self._head(state, t_ms)

        return read_values(plan, find, columns, head_of, t_ms, self._geometry)

    def _head(self, state: KeyState, t_ms: int) -> HeadSlice | None:
        plan = self.plan
        times: list[int] = state.head.get("ts", [])
        end = (t_ms // plan.base) * plan.base
        a = bisect_left(times, end)
        b = bisect_left(times, t_ms, lo=a)
        if b <= a:
            return None
        h = state.head
        return make_slice(
            plan,
            np.asarray(times[a:b], dtype=np.int64),
            _array(h["eid"][a:b], "eid", object),
            {c: _array(h[f"c:{c}"][a:b], c, object) for c in plan.columns},
            {x.index: np.asarray(h[f"w:{x.index}"][a:b], dtype=bool) for x in plan.aggs},
        )


class _Local:
    """One level's fields of a key state, made arrays when a read first uses them."""

    def __init__(self, fields: dict[str, list[Any]], specs: dict[str, tuple[Any, Any]]) -> None:
        self.fields = fields
        self.specs = specs
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, name: str) -> np.ndarray:
        arr = self.arrays.get(name)
        if arr is None:
            arr = self.arrays[name] = _array(self.fields[name], name, self.specs[name][0])
        return arr

    def promote(self, name: str, dtype: np.dtype[Any]) -> np.ndarray:
        return self.get(name)


def import_key(rt: ViewAggregator, blob: bytes) -> None:
    state = decode_key(blob)
    _check(rt.view.name, rt.fingerprint, state.fingerprint, state.version, KEY_VERSION)
    key = tuple(state.key) if len(rt.join_keys) > 1 else state.key
    kid = rt.index.id_of(key)
    for level in rt.levels:
        rt.tiles.drop(level.number, level.rows_of_keys(np.asarray([kid]), None))
    for i, level in enumerate(rt.levels):
        tiles = np.asarray(state.tiles[i], dtype=np.int64)
        rows = rt.tiles.locate(i, np.full(len(tiles), kid, dtype=np.int64), tiles)
        for name, values in state.fields[i].items():
            arr = _array(values, name, level.cols.defaults[name][0])
            level.cols.promote(name, arr.dtype)[rows] = arr
    ts = np.asarray(state.head.get("ts", []), dtype=np.int64)
    if len(ts):
        h = state.head
        first = rt.head.append(
            ts,
            _array(h["eid"], "eid", object),
            {c: h[f"c:{c}"] for c in rt.plan.columns},
            {a.index: np.asarray(h[f"w:{a.index}"], dtype=bool) for a in rt.plan.aggs},
        )
        tiles, starts, counts = np.unique(ts // rt.plan.base, return_index=True, return_counts=True)
        base = rt.levels[0]
        rows = rt.tiles.locate(0, np.full(len(tiles), kid, dtype=np.int64), tiles)
        rt.head.link(base.cols.get("h_first"), base.cols.get("h_last"), rows, first + starts, counts)
    if state.high_water is not None and (rt.high_water is None or state.high_water > rt.high_water):
        rt.high_water = state.high_water
        rt.covered_from = rt.plan.covered_from(state.high_water)
        rt.retained_from = rt.plan.retained_from(rt.covered_from)


# -- the whole runtime ------------------------------------------------------------------


def _encode_array(arr: np.ndarray, name: str) -> tuple[str, Any]:
    if arr.dtype == object:
        return ("object", _plain(arr.tolist(), name))
    return (arr.dtype.str, arr.tobytes())


def _decode_array(item: tuple[str, Any], name: str) -> np.ndarray:
    dtype, payload = item
    if dtype == "object":
        return _array(payload, name, object)
    return np.frombuffer(payload, dtype=np.dtype(dtype)).copy()


def snapshot(rt: ViewAggregator) -> bytes:
    def table(cols: Any) -> dict[str, tuple[str, Any]]:
        return {n: _encode_array(a[: cols.used], n) for n, a in cols.arrays.items()}

    snap = Snapshot(
        version=VERSION,
        view=rt.view.name,
        fingerprint=rt.fingerprint,
        exact_for=rt.plan.exact_for,
        high_water=rt.high_water,
        covered_from=rt.covered_from,
        retained_from=rt.retained_from,
        applied=rt.applied,
        dropped=rt.dropped,
        evicted=list(rt.evicted_at),
        keys=[list(k) if isinstance(k, tuple) else k for k in rt.index.keys],
        levels=[table(level.cols) for level in rt.levels],
        head=table(rt.head.cols),
    )
    return _encoder.encode(snap)


def restore(rt: ViewAggregator, blob: bytes) -> None:
    snap = msgspec.msgpack.decode(blob, type=Snapshot)
    _check(rt.view.name, rt.fingerprint, snap.fingerprint, snap.version)
    if snap.exact_for != rt.plan.exact_for:
        rt.plan = rt.head.plan = plan_view(rt.view, exact_for=timedelta(milliseconds=snap.exact_for))
    keys = [tuple(k) for k in snap.keys] if len(rt.join_keys) > 1 else list(snap.keys)
    rt.index.restore(keys)
    for level, table in zip(rt.levels, snap.levels, strict=True):
        level.cols.load({n: _decode_array(item, n) for n, item in table.items()})
    rt.tiles.rebuild()
    rt.head.cols.load({n: _decode_array(item, n) for n, item in snap.head.items()})
    rt.high_water, rt.covered_from, rt.retained_from = snap.high_water, snap.covered_from, snap.retained_from
    rt.applied, rt.dropped = snap.applied, snap.dropped
    rt.evicted_at = list(snap.evicted)


def encode_many(parts: dict[str, bytes]) -> bytes:
    return _encoder.encode(parts)


def decode_many(blob: bytes) -> dict[str, bytes]:
    return msgspec.msgpack.decode(blob, type=dict[str, bytes])
