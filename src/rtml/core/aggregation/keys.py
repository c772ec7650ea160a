"""Entity keys to dense key ids (0, 1, 2, ...), for a batch at a time.

A key is the value of the view's join key, or the tuple of its join keys' values. The
dict ``ids`` is the truth. When the join key columns are non-negative integers without
NULLs (one column, or two below 2**31), a batch is looked up in numpy through an
:class:`~.intmap.IntMap` of packed codes, and Python objects are made only for new keys.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtml.core.aggregation.batch import Column
from rtml.core.aggregation.intmap import IntMap


class KeyIndex:
    def __init__(self, arity: int) -> None:
        self.arity = arity
        self.keys: list[Any] = []
        self.ids: dict[Any, int] = {}
        self._fast = IntMap()

    def __len__(self) -> int:
        return len(self.keys)

    def ids_of(self, cols: list[Column]) -> tuple[np.ndarray, int]:
        """Key ids of each row of the join key columns; and how many keys are new."""
        before = len(self.keys)
        codes = _codes(cols)
        if codes is None:
            return np.asarray(self._python_ids(_values(cols, None)), dtype=np.int64), len(self.keys) - before
        ids = self._fast.get(codes)
        miss = np.flatnonzero(ids < 0)
        if len(miss):
            unique, first = np.unique(codes[miss], return_index=True)
            at = miss[first]
            found = np.asarray(self._python_ids(_values(cols, at)), dtype=np.int64)
            self._fast.insert(unique, found)
            ids[miss] = self._fast.get(codes[miss])
        return ids, len(self.keys) - before

    def id_of(self, key: Any) -> int:
        """The id of one key, new if need be."""
        return self._python_ids([key])[0]

    def _python_ids(self, values: list[Any]) -> list[int]:
        get = self.ids.get
        ids = list(map(get, values))
        if None in ids:
            new = list(dict.fromkeys(v for v, k in zip(values, ids, strict=True) if k is None))
            first = len(self.keys)
            self.keys.extend(new)
            self.ids.update(zip(new, range(first, first + len(new)), strict=True))
            ids = list(map(get, values))
        return ids  # type: ignore[return-value]

    def restore(self, keys: list[Any]) -> None:
        self.keys = keys
        self.ids = {k: i for i, k in enumerate(keys)}
        self._fast = IntMap()


def _codes(cols: list[Column]) -> np.ndarray | None:
    if len(cols) > 2 or any(c.kind != "int" or c.valid is not None for c in cols):
        return None
    if not len(cols[0].values):
        return np.zeros(0, dtype=np.int64)
    if len(cols) == 1:
        values = cols[0].values
        return values if int(values.min()) >= 0 else None
    a, b = cols[0].values, cols[1].values
    limit = 1 << 31
    if min(int(a.min()), int(b.min())) < 0 or max(int(a.max()), int(b.max())) >= limit:
        return None
    return (a << 31) | b


def _values(cols: list[Column], at: np.ndarray | None) -> list[Any]:
    picked = [c if at is None else c.take(at) for c in cols]
    lists = [c.python() for c in picked]
    return lists[0] if len(lists) == 1 else list(zip(*lists, strict=True))
