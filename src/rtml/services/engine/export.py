"""The state blobs of many keys at once: the engine's hot path.

``ViewAggregator.states_of(keys)`` exports key by key (per key and level, a fancy index
and a ``tolist`` per field; per key, its head chain walked and sorted), about 100-200 us a
key on the example. A live engine writes the states of the keys of every batch, so that
cost bounds its rate and freshness. :func:`export_states` builds the very same
:class:`~rtml.core.aggregation.KeyState` blobs (byte for byte; the tests hold it to
``states_of``) with one gather per column for all the keys, then slices per key:

1. per level, the keys' retained tile rows (``Level.rows_of_keys``, sorted by key then
   tile); each field gathered and made a list once, cut at the key boundaries;
2. the head: every chain of the keys' level-0 tiles at or after ``covered_from`` walked
   for all keys together (one step per chain link), the rows sorted by (key, time,
   event id) in one ``lexsort``, each column gathered once and cut per key;
3. one ``KeyState`` per key, msgpack-encoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from rtml.core.aggregation import KeyState, ViewAggregator
from rtml.core.aggregation import state as codec
from rtml.core.aggregation.delta import KeyDelta, delta_frame

_EMPTY = np.zeros(0, dtype=np.int64)


def export_states(rt: ViewAggregator, keys: Sequence[Any]) -> dict[Any, bytes]:
    """``rt.states_of(keys)`` for keys the runtime normalized already (a value, or a tuple)."""
    keys = list(dict.fromkeys(keys))
    ids = rt.index.ids
    kids = np.asarray(sorted({ids[k] for k in keys if k in ids}), dtype=np.int64)
    covered = rt.covered_from
    per_level: list[tuple[dict[int, tuple[int, int]], list[Any], dict[str, list[Any]], np.ndarray]] = []
    for level, retained in zip(rt.levels, rt.level_retained_from(), strict=True):
        rows = level.rows_of_keys(kids, retained) if len(kids) else _EMPTY
        spans = _spans(level.cols.get("key")[rows], kids)
        tiles = level.cols.get("tile")[rows].tolist()
        names = [n for n in level.cols.arrays if n not in codec._RESERVED]
        fields = {n: codec._plain(level.cols.get(n)[rows].tolist(), n) for n in names}
        per_level.append((spans, tiles, fields, rows))
    head_spans, head_lists = _heads(rt, per_level[0][3], covered)
    empty_head: dict[str, list[Any]] = {n: [] for n in rt.head.cols.arrays if not n.startswith("seg_")}
    out: dict[Any, bytes] = {}
    for key in keys:
        kid = ids.get(key)
        tiles_out: list[list[int]] = []
        fields_out: list[dict[str, list[Any]]] = []
        for spans, tiles, fields, _ in per_level:
            a, b = spans.get(kid, (0, 0)) if kid is not None else (0, 0)
            tiles_out.append(tiles[a:b])
            fields_out.append({n: values[a:b] for n, values in fields.items()})
        span = head_spans.get(kid) if kid is not None else None
        head = (
            empty_head if span is None else {n: values[span[0] : span[1]] for n, values in head_lists.items()}
        )
        state = KeyState(
            version=codec.KEY_VERSION,
            view=rt.view.name,
            fingerprint=rt.fingerprint,
            key=list(key) if isinstance(key, tuple) else key,
            high_water=rt.high_water,
            covered_from=covered,
            retained_from=rt.retained_from,
            tiles=tiles_out,
            fields=fields_out,
            head=head,
        )
        out[key] = codec.encode_key_state(state)
    return out


Taken = tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, dict[str, list[Any]]]]


def export_deltas(rt: ViewAggregator, keys: Sequence[Any], taken: Taken) -> dict[Any, bytes]:
    """Per key, the delta frame of what changed since the runtime's changes were last taken
    (``taken``: ``Changes.take()``): the current partials of the tile rows merged into, the
    head events appended, the clock. Appended to the key's stored blob, it gives what
    :func:`export_states` would write now (for every covered read)."""
    keys = list(dict.fromkeys(keys))
    ids = rt.index.ids
    kids = np.asarray(sorted({ids[k] for k in keys if k in ids}), dtype=np.int64)
    tile_changes, (head_keys, head_cols) = taken
    per_level: list[tuple[dict[int, tuple[int, int]], list[int], dict[str, list[Any]]]] = []
    for i, (level, (ck, ct)) in enumerate(zip(rt.levels, tile_changes, strict=True)):
        mine = np.isin(ck, kids) if len(ck) else np.zeros(0, dtype=bool)
        ck, ct = ck[mine], ct[mine]
        rows = rt.tiles.find(i, ck, ct)
        alive = rows >= 0  # evicted since: no covered read uses the tile
        ck, ct, rows = ck[alive], ct[alive], rows[alive]
        names = [n for n in level.cols.arrays if n not in codec._RESERVED]
        fields = {n: codec._plain(level.cols.get(n)[rows].tolist(), n) for n in names}
        per_level.append((_spans(ck, kids), ct.tolist(), fields))
    head_spans: dict[int, tuple[int, int]] = {}
    head_lists: dict[str, list[Any]] = {}
    if len(head_keys):
        order = np.argsort(head_keys, kind="stable")
        sorted_keys = head_keys[order]
        head_spans = _spans(sorted_keys, kids)
        if len(order) == 1 or bool((order[1:] > order[:-1]).all()):
            head_lists = head_cols
        else:
            take = itemgetter(*order.tolist())
            head_lists = {n: list(take(values)) for n, values in head_cols.items()}
    out: dict[Any, bytes] = {}
    high, covered, retained = rt.high_water, rt.covered_from, rt.retained_from
    for key in keys:
        kid = ids.get(key)
        tiles_out: list[list[int]] = []
        fields_out: list[dict[str, list[Any]]] = []
        for spans, tiles, fields in per_level:
            a, b = spans.get(kid, (0, 0)) if kid is not None else (0, 0)
            tiles_out.append(tiles[a:b])
            fields_out.append({n: values[a:b] for n, values in fields.items()} if b > a else {})
        span = head_spans.get(kid) if kid is not None else None
        head = {} if span is None else {n: values[span[0] : span[1]] for n, values in head_lists.items()}
        delta = KeyDelta(
            high_water=high,
            covered_from=covered,
            retained_from=retained,
            tiles=tiles_out,
            fields=fields_out,
            head=head,
        )
        out[key] = delta_frame(delta)
    return out


def _spans(row_keys: np.ndarray, kids: np.ndarray) -> dict[int, tuple[int, int]]:
    """Where each key's rows are in ``row_keys`` (sorted by key): kid -> (start, end)."""
    if not len(row_keys):
        return {}
    starts = np.searchsorted(row_keys, kids, side="left").tolist()
    ends = np.searchsorted(row_keys, kids, side="right").tolist()
    return {k: (a, b) for k, a, b in zip(kids.tolist(), starts, ends, strict=True) if b > a}


def _heads(
    rt: ViewAggregator, base_rows: np.ndarray, covered: int | None
) -> tuple[dict[int, tuple[int, int]], dict[str, list[Any]]]:
    """The head events of the keys whose level-0 rows are ``base_rows``, sorted by (key,
    time, event id): kid -> (start, end), and each head column as one list."""
    base = rt.levels[0]
    first, tile, owner = base.cols.get("h_first"), base.cols.get("tile"), base.cols.get("key")
    chained = base_rows[first[base_rows] >= 0]
    if covered is not None:
        chained = chained[tile[chained] * base.size >= covered]
    if not len(chained):
        return {}, {}
    seg_len, seg_next = rt.head.cols.get("seg_len"), rt.head.cols.get("seg_next")
    starts, owners = [], []
    at, who = first[chained], owner[chained]
    while len(at):  # one step along every chain at once
        starts.append(at)
        owners.append(who)
        nxt = seg_next[at]
        alive = nxt >= 0
        at, who = nxt[alive], who[alive]
    seg_start, seg_owner = np.concatenate(starts), np.concatenate(owners)
    lengths = seg_len[seg_start]
    rows = np.repeat(seg_start - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    row_owner = np.repeat(seg_owner, lengths)
    cols = rt.head.cols
    ts, eid = cols.get("ts")[rows], cols.get("eid")[rows]
    order = _order(row_owner, ts, eid)
    rows, row_owner = rows[order], row_owner[order]
    kids = np.unique(row_owner)
    spans = _spans(row_owner, kids)
    lists = {n: cols.get(n)[rows].tolist() for n in cols.arrays if not n.startswith("seg_")}
    return spans, lists


def _order(owner: np.ndarray, ts: np.ndarray, eid: np.ndarray) -> np.ndarray:
    """The rows by (key, time, event id). Event ids are strings (the engine's decoder and
    the offline store make them so), compared by code point as Python does."""
    if len(owner) < 2:
        return np.arange(len(owner), dtype=np.int64)
    return np.lexsort((eid.astype(str), ts, owner))
