"""The aggregation functions vectorized: many events and many tiles per numpy call.

A kernel stores a partial aggregate in a few columns (its ``fields``) of a tile table.
``reduce`` turns events sorted by group into one partial per group (``ufunc.reduceat``),
``merge`` folds partials into stored tiles in place, ``finish`` merges the partials a read
gathered and gives the value. They compute what :mod:`.functions` computes one event
at a time (the tests hold them to it).

Numeric columns are kept as int64 while every value seen is an integer (exact sums), and
promoted to float64 for good at the first non-integer. ``min``/``max`` keep a count beside
the value, so an empty tile is never mistaken for a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from rtml.core.aggregation.batch import NUMERIC, Column
from rtml.errors import InvalidInputError

Part = dict[str, np.ndarray]
NO_TS = np.iinfo(np.int64).min  # "no event" in a ``last`` tile


class Store(Protocol):
    """A tile table's columns, as a kernel sees them (``tiles.Columns``)."""

    def get(self, name: str) -> np.ndarray: ...

    def promote(self, name: str, dtype: np.dtype[Any]) -> np.ndarray: ...


@dataclass(frozen=True)
class Inputs:
    """One aggregation's view of events: ``mask`` = the event counts for it (``where`` passed,
    and a non-NULL value where the function ignores NULLs), ``values``/``valid`` its column."""

    mask: np.ndarray
    values: np.ndarray | None
    valid: np.ndarray | None
    ts: np.ndarray
    eid: np.ndarray

    def take(self, index: np.ndarray) -> Inputs:
        return Inputs(
            self.mask[index],
            None if self.values is None else self.values[index],
            None if self.valid is None else self.valid[index],
            self.ts[index],
            self.eid[index],
        )


class Kernel:
    """Base: ``fields`` maps a field name to (dtype, empty value)."""

    fields: ClassVar[dict[str, tuple[Any, Any]]] = {}
    skips_nulls: ClassVar[bool] = True
    numeric: ClassVar[bool] = False

    def __init__(self, prefix: str, function: str, column: str | None) -> None:
        self.prefix = prefix
        self.function = function
        self.column = column

    def name(self, field: str) -> str:
        return f"{self.prefix}{field}"

    def values(self, col: Column) -> np.ndarray:
        """The column's values in the form ``reduce`` takes."""
        if not self.numeric:
            return col.values
        if col.kind == "null":
            return np.zeros(len(col.values), dtype=np.int64)
        if col.kind not in NUMERIC:
            raise InvalidInputError(
                f"{self.function}({self.column}) needs numbers; the column holds {col.kind} values"
            )
        return col.values.astype(np.int64) if col.kind == "bool" else col.values

    def inputs(self, col: Column | None, where: np.ndarray, ts: np.ndarray, eid: np.ndarray) -> Inputs:
        if col is None:
            return Inputs(where, None, None, ts, eid)
        mask = where & col.valid if (self.skips_nulls and col.valid is not None) else where
        return Inputs(mask, self.values(col), col.valid, ts, eid)

    def reduce(self, ev: Inputs, starts: np.ndarray) -> Part:
        raise NotImplementedError

    def merge(self, store: Store, rows: np.ndarray, part: Part) -> None:
        raise NotImplementedError

    def finish(self, parts: Sequence[Part]) -> Any:
        raise NotImplementedError

    def _count(self, ev: Inputs, starts: np.ndarray) -> np.ndarray:
        return np.add.reduceat(ev.mask.astype(np.int64), starts)

    def _add(self, store: Store, field: str, rows: np.ndarray, values: np.ndarray) -> None:
        target = store.promote(self.name(field), values.dtype)
        target[rows] += values


def _total(parts: Sequence[Part], field: str) -> Any:
    return sum(p[field].sum().item() for p in parts)


class CountKernel(Kernel):
    fields: ClassVar[dict[str, tuple[Any, Any]]] = {"n": (np.int64, 0)}

    def reduce(self, ev: Inputs, starts: np.ndarray) -> Part:
        return {"n": self._count(ev, starts)}

    def merge(self, store: Store, rows: np.ndarray, part: Part) -> None:
        self._add(store, "n", rows, part["n"])

    def finish(self, parts: Sequence[Part]) -> Any:
        return int(_total(parts, "n"))


class SumKernel(Kernel):
    fields: ClassVar[dict[str, tuple[Any, Any]]] = {"s": (np.int64, 0)}
    numeric = True

    def reduce(self, ev: Inputs, starts: np.ndarray) -> Part:
        assert ev.values is not None
        return {"s": np.add.reduceat(np.where(ev.mask, ev.values, 0), starts)}

    def merge(self, store: Store, rows: np.ndarray, part: Part) -> None:
        self._add(store, "s", rows, part["s"])

    def finish(self, parts: Sequence[Part]) -> Any:
        return _total(parts, "s")


class MeanKernel(Kernel):
    fields: ClassVar[dict[str, tuple[Any, Any]]] = {"s": (np.int64, 0), "n": (np.int64, 0)}
    numeric = True

    def reduce(self, ev: Inputs, starts: np.ndarray) -> Part:
        assert ev.values is not None
        return {"s": np.add.reduceat(np.where(ev.mask, ev.values, 0), starts), "n": self._count(ev, starts)}

    def merge(self, store: Store, rows: np.ndarray, part: Part) -> None:
        self._add(store, "s", rows, part["s"])
        self._add(store, "n", rows, part["n"])

    def finish(self, parts: Sequence[Part]) -> Any:
        n = _total(parts, "n")
        return _total(parts, "s") / n if n else None


class ExtremeKernel(Kernel):
    """``min`` or ``max``: the extreme value ``v`` and the count ``n`` of values behind it."""

    fields: ClassVar[dict[str, tuple[Any, Any]]] = {"v": (np.int64, 0), "n": (np.int64, 0)}
    numeric = True

    def __init__(self, prefix: str, function: str, column: str | None) -> None:
        super().__init__(prefix, function, column)
        self.ufunc = np.maximum if function == "max" else np.minimum

    def _sentinel(self, dtype: np.dtype[Any]) -> Any:
        big = np.inf if dtype.kind == "f" else np.iinfo(np.int64).max
        return -big if self.function == "max" else big

    def reduce(self, ev: Inputs, starts: np.ndarray) -> Part:
        assert ev.values is not None
        filled = np.where(ev.mask, ev.values, self._sentinel(ev.values.dtype))
        return {"v": self.ufunc.reduceat(filled, starts), "n": self._count(ev, starts)}

    def merge(self, store: Store, rows: np.ndarray, part: Part) -> None:
        pv, pn = part["v"], part["n"]
        target = store.promote(self.name("v"), pv.dtype)
        counts = store.get(self.name("n"))
        cur, cur_n = target[rows], counts[rows]
        target[rows] = np.where(cur_n == 0, pv, np.where(pn == 0, cur, self.ufunc(cur, pv)))
        counts[rows] = cur_n + pn

    def finish(self, parts: Sequence[Part]) -> Any:
        found = [p["v"][p["n"] > 0] for p in parts]
        values = [v for v in found if len(v)]
        if not values:
            return None
        best = [(v.max() if self.function == "max" else v.min()).item() for v in values]
        return max(best) if self.function == "max" else min(best)


class LastKernel(Kernel):
    """The latest event's value: ``ts``, ``eid`` (its order key) and ``v`` (NULL included)."""

    fields: ClassVar[dict[str, tuple[Any, Any]]] = {
        "ts": (np.int64, NO_TS),
        "eid": (object, None),
        "v": (object, None),
    }
    skips_nulls = False

    def reduce(self, ev: Inputs, starts: np.ndarray) -> Part:
        """Events must be sorted by ``(ts, event_id)`` within each group."""
        assert ev.values is not None
        pos = np.where(ev.mask, np.arange(len(ev.mask)), -1)
        idx = np.maximum.reduceat(pos, starts)
        has = idx >= 0
        at = idx[has]
        ts = np.full(len(idx), NO_TS, dtype=np.int64)
        ts[has] = ev.ts[at]
        eid = np.full(len(idx), None, dtype=object)
        eid[has] = ev.eid[at]
        value = np.full(len(idx), None, dtype=object)
        picked = ev.values[at].tolist()
        if ev.valid is not None:
            picked = [v if ok else None for v, ok in zip(picked, ev.valid[at].tolist(), strict=True)]
        value[has] = picked if picked else []
        return {"ts": ts, "eid": eid, "v": value}

    def merge(self, store: Store, rows: np.ndarray, part: Part) -> None:
        sts, seid, sv = (store.get(self.name(f)) for f in ("ts", "eid", "v"))
        pts, peid = part["ts"], part["eid"]
        cts = sts[rows]
        newer = pts > cts
        tie = np.flatnonzero((pts == cts) & (pts != NO_TS))
        if len(tie):
            cur = seid[rows[tie]]
            newer[tie] = [a > b for a, b in zip(peid[tie].tolist(), cur.tolist(), strict=True)]
        take = rows[newer]
        sts[take] = pts[newer]
        seid[take] = peid[newer]
        sv[take] = part["v"][newer]

    def finish(self, parts: Sequence[Part]) -> Any:
        best: tuple[int, str, Any] | None = None
        for p in parts:
            ts = p["ts"]
            if not len(ts):
                continue
            top = int(ts.max())
            if top == NO_TS:
                continue
            for i in np.flatnonzero(ts == top).tolist():
                cand = (top, p["eid"][i], p["v"][i])
                if best is None or (cand[0], cand[1]) > (best[0], best[1]):
                    best = cand
        return None if best is None else best[2]


class DistinctKernel(Kernel):
    """Exact ``count_distinct``: each tile keeps its values in a tuple (``None`` when empty).

    Merging concatenates tuples (one numpy object operation for all rows); duplicates are
    dropped when a tuple grows past ``DEDUPE_AT`` and at read time. Tuples, not sets: a
    tuple of plain values drops out of the garbage collector's sight, so millions of
    tiles cost it nothing."""

    fields: ClassVar[dict[str, tuple[Any, Any]]] = {"set": (object, None)}
    DEDUPE_AT = 32

    def reduce(self, ev: Inputs, starts: np.ndarray) -> Part:
        assert ev.values is not None
        sets = np.full(len(starts), None, dtype=object)
        sel = np.flatnonzero(ev.mask)
        if not len(sel):
            return {"set": sets}
        group = np.searchsorted(starts, sel, side="right") - 1
        values = ev.values[sel]
        counts = np.bincount(group, minlength=len(starts))
        first = np.searchsorted(group, np.arange(len(starts)))
        single = np.flatnonzero(counts == 1)
        sets[single] = _tuples([(v,) for v in values[first[single]].tolist()])
        for g in np.flatnonzero(counts > 1).tolist():
            sets[g] = tuple(set(values[first[g] : first[g] + counts[g]].tolist()))
        return {"set": sets}

    def merge(self, store: Store, rows: np.ndarray, part: Part) -> None:
        target = store.get(self.name("set"))
        has = np.flatnonzero(_present(part["set"]))
        rows, sets = rows[has], part["set"][has]
        cur = target[rows]
        old = _present(cur)
        target[rows[~old]] = sets[~old]
        if old.any():
            merged = cur[old] + sets[old]  # tuple concatenation, element by element
            sizes = np.fromiter(map(len, merged), dtype=np.int64, count=len(merged))
            for i in np.flatnonzero(sizes > self.DEDUPE_AT).tolist():
                merged[i] = tuple(set(merged[i]))
            target[rows[old]] = merged

    def finish(self, parts: Sequence[Part]) -> Any:
        seen: set[Any] = set()
        for p in parts:
            for s in p["set"].tolist():
                if s is not None:
                    seen.update(s)
        return len(seen)


def _present(values: np.ndarray) -> np.ndarray:
    """Where an object column holds something other than ``None``."""
    present: np.ndarray = np.not_equal(values, None)  # type: ignore[call-overload]
    return present


def _tuples(items: list[tuple[Any, ...]]) -> np.ndarray:
    """An object array of tuples (``np.asarray`` would make a 2-d array of them)."""
    return np.fromiter(items, dtype=object, count=len(items))


KERNELS: dict[str, type[Kernel]] = {
    "count": CountKernel,
    "sum": SumKernel,
    "mean": MeanKernel,
    "min": ExtremeKernel,
    "max": ExtremeKernel,
    "last": LastKernel,
    "count_distinct": DistinctKernel,
}


def kernel_for(prefix: str, function: str, column: str | None) -> Kernel:
    return KERNELS[function](prefix, function, column)
