"""The exact head: recent events kept one by one, so a read at any covered ``t`` is exact.

Events whose base tile is not older than ``covered_from`` are appended to one
:class:`HeadStore` per view (time, event id, the value columns as Python objects and each
aggregation's ``where`` result). A batch appends the events of one ``(key, base tile)`` as
one contiguous *segment*; the segments of a tile form a chain (``seg_next``) that starts
at the tile's ``h_first`` column on level 0, so a read finds the events of
``[floor(t, base), t)`` of one key without a scan. All of it is int columns: no Python
object per tile, nothing for the garbage collector to walk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rtml.core.aggregation.batch import Column, column
from rtml.core.aggregation.layout import ViewPlan
from rtml.core.aggregation.tiles import Columns


@dataclass(frozen=True)
class HeadSlice:
    """The head events of one key in ``[floor(t, base), t)``, sorted by (time, event id)."""

    ts: np.ndarray
    eid: np.ndarray
    columns: dict[str, Column]
    where: dict[int, np.ndarray]

    def __len__(self) -> int:
        return len(self.ts)


def head_fields(plan: ViewPlan) -> dict[str, tuple[Any, Any]]:
    fields: dict[str, tuple[Any, Any]] = {
        "ts": (np.int64, 0),
        "eid": (object, None),
        "seg_len": (np.int64, 0),  # at a segment's first row: its length
        "seg_next": (np.int64, -1),  # at a segment's first row: the next segment's, or -1
    }
    fields.update({f"c:{c}": (object, None) for c in plan.columns})
    fields.update({f"w:{a.index}": (bool, False) for a in plan.aggs})
    return fields


def make_slice(
    plan: ViewPlan,
    ts: np.ndarray,
    eid: np.ndarray,
    values: dict[str, np.ndarray],
    where: dict[int, np.ndarray],
) -> HeadSlice:
    """A :class:`HeadSlice` from raw head arrays (values as Python objects), sorted."""
    if plan.has_last and len(ts) > 1:
        order = np.asarray(sorted(range(len(ts)), key=lambda i: (ts[i], eid[i])), dtype=np.int64)
        ts, eid = ts[order], eid[order]
        values = {c: v[order] for c, v in values.items()}
        where = {i: w[order] for i, w in where.items()}
    return HeadSlice(ts, eid, {c: column(v) for c, v in values.items()}, where)


class HeadStore:
    """Append-only columns of head events, compacted when half of them are evicted."""

    def __init__(self, plan: ViewPlan) -> None:
        self.plan = plan
        self.cols = Columns(head_fields(plan))

    def append(
        self,
        ts: np.ndarray,
        eid: np.ndarray,
        values: dict[str, list[Any]],
        where: dict[int, np.ndarray],
    ) -> int:
        """Append events; the row of the first one."""
        rows = self.cols.alloc(len(ts))
        if not len(rows):
            return self.cols.used
        first = int(rows[0])
        span = slice(first, first + len(rows))
        self.cols.get("ts")[span] = ts
        self.cols.get("eid")[span] = eid
        for c, vals in values.items():
            self.cols.get(f"c:{c}")[span] = vals
        for i, w in where.items():
            self.cols.get(f"w:{i}")[span] = w
        return first

    def slice(self, rows: np.ndarray, before: int) -> HeadSlice:
        """The events at ``rows`` with time before ``before``."""
        rows = rows[self.cols.get("ts")[rows] < before]
        get = self.cols.get
        return make_slice(
            self.plan,
            get("ts")[rows],
            get("eid")[rows],
            {c: get(f"c:{c}")[rows] for c in self.plan.columns},
            {a.index: get(f"w:{a.index}")[rows] for a in self.plan.aggs},
        )

    def lists(self, rows: np.ndarray) -> dict[str, list[Any]]:
        """The events at ``rows`` as lists (for exports), sorted by (time, event id)."""
        ts, eid = self.cols.get("ts")[rows], self.cols.get("eid")[rows]
        order = sorted(range(len(rows)), key=lambda i: (ts[i], eid[i]))
        rows = rows[np.asarray(order, dtype=np.int64)]
        return {n: self.cols.get(n)[rows].tolist() for n in self.cols.arrays if not n.startswith("seg_")}

    def link(
        self, first: np.ndarray, last: np.ndarray, tiles: np.ndarray, starts: np.ndarray, lengths: np.ndarray
    ) -> None:
        """Chain new segments (``starts``, ``lengths``) to the (unique) level-0 ``tiles`` rows,
        whose ``h_first``/``h_last`` columns are ``first``/``last``."""
        self.cols.get("seg_len")[starts] = lengths
        seg_next = self.cols.get("seg_next")
        seg_next[starts] = -1
        chained = first[tiles] >= 0
        seg_next[last[tiles[chained]]] = starts[chained]
        first[tiles[~chained]] = starts[~chained]
        last[tiles] = starts

    def rows_from(self, first: int) -> np.ndarray:
        """The store rows of the chain that starts at ``first``."""
        seg_len, seg_next = self.cols.get("seg_len"), self.cols.get("seg_next")
        parts = []
        while first >= 0:
            parts.append(np.arange(first, first + int(seg_len[first]), dtype=np.int64))
            first = int(seg_next[first])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def compact(self, first: np.ndarray, last: np.ndarray, keep_from: int) -> None:
        """Drop events before ``keep_from``; renumber the chains (``first``/``last``: level 0's
        ``h_first``/``h_last``, whose chains before ``keep_from`` are already cut)."""
        used = self.cols.used
        live = np.flatnonzero(self.cols.get("ts")[:used] >= keep_from)
        if len(live) == used:
            return
        new_pos = np.full(used + 1, -1, dtype=np.int64)  # new_pos[-1] == -1 maps "no row"
        new_pos[live] = np.arange(len(live), dtype=np.int64)
        self.cols.keep(live)
        seg_next = self.cols.get("seg_next")[: len(live)]
        seg_next[:] = new_pos[seg_next]
        first[:] = new_pos[first]
        last[:] = new_pos[last]
