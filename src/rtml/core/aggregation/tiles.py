"""Tile tables: one per level of a view, all keys in shared numpy columns.

Each :class:`Level` keeps its tiles as rows of one :class:`Columns` table: the key id, the
tile index and the partial aggregate of every aggregation on the level (updates are numpy
operations on many rows at once). :class:`Tiles` finds the row of ``(level, key, tile)``
through one vectorized hash map (:mod:`.intmap`). Evicted rows are unlinked and
go to a free list that new tiles take first: a row keeps its number while it lives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtml.core.aggregation.intmap import IntMap


class Columns:
    """Named numpy columns with a shared length, grown by doubling."""

    def __init__(self, fields: dict[str, tuple[Any, Any]], capacity: int = 1024) -> None:
        self.defaults = {name: (np.dtype(dtype), empty) for name, (dtype, empty) in fields.items()}
        self.arrays = {name: self._blank(name, capacity) for name in self.defaults}
        self.used = 0
        self.capacity = capacity
        self.free = np.zeros(0, dtype=np.int64)  # released rows, reused first

    def _blank(self, name: str, n: int) -> np.ndarray:
        dtype, empty = self.defaults[name]
        out = np.empty(n, dtype=dtype)
        out.fill(empty)
        return out

    def get(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def promote(self, name: str, dtype: np.dtype[Any]) -> np.ndarray:
        """The column, widened for good (int64 -> float64) if ``dtype`` needs it."""
        arr = self.arrays[name]
        wanted = np.result_type(arr.dtype, dtype)
        if wanted != arr.dtype:
            arr = self.arrays[name] = arr.astype(wanted)
            self.defaults[name] = (wanted, self.defaults[name][1])
        return arr

    def alloc(self, n: int) -> np.ndarray:
        """``n`` fresh rows (empty partials); their row numbers. Released rows go first."""
        if len(self.free):
            reused, self.free = self.free[:n], self.free[n:]
            if len(reused) == n:
                return reused
            return np.concatenate([reused, self._grow(n - len(reused))])
        return self._grow(n)

    def release(self, rows: np.ndarray) -> None:
        """Empty ``rows`` and keep them for reuse."""
        self.clear(rows)
        self.free = np.concatenate([self.free, rows])

    def _grow(self, n: int) -> np.ndarray:
        start = self.used
        if start + n > self.capacity:
            capacity = max(2 * self.capacity, start + n)
            for name, arr in self.arrays.items():
                grown = self._blank(name, capacity)
                grown[:start] = arr[:start]
                self.arrays[name] = grown
            self.capacity = capacity
        self.used = start + n
        return np.arange(start, start + n, dtype=np.int64)

    def clear(self, rows: np.ndarray) -> None:
        for name, arr in self.arrays.items():
            arr[rows] = self.defaults[name][1]

    def keep(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (in this order) as rows ``0..len(rows)-1``."""
        n = len(rows)
        capacity = max(1024, 2 * n)
        for name, arr in self.arrays.items():
            fresh = self._blank(name, capacity)
            fresh[:n] = arr[rows]
            self.arrays[name] = fresh
        self.used, self.capacity = n, capacity
        self.free = np.zeros(0, dtype=np.int64)

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Replace the content by ``arrays`` (all of the same length)."""
        n = len(next(iter(arrays.values()))) if arrays else 0
        self.keep(np.zeros(0, dtype=np.int64))
        self.alloc(n)
        for name, values in arrays.items():
            self.promote(name, values.dtype)[:n] = values
        if "key" in self.arrays:
            self.free = np.flatnonzero(self.arrays["key"][:n] < 0)


class Level:
    """The tiles of one size for every key of a view: rows of a :class:`Columns` table."""

    def __init__(self, number: int, size: int, fields: dict[str, tuple[Any, Any]]) -> None:
        self.number = number
        self.size = size
        self.cols = Columns({"key": (np.int64, -1), "tile": (np.int64, 0), **fields})

    def live(self) -> np.ndarray:
        return np.flatnonzero(self.cols.get("key")[: self.cols.used] >= 0)

    def rows_of_keys(self, key_ids: np.ndarray, from_ms: int | None) -> np.ndarray:
        """Rows of these keys (tiles starting at or after ``from_ms``), by key then tile."""
        used = self.cols.used
        keys, tiles = self.cols.get("key")[:used], self.cols.get("tile")[:used]
        mine = keys == key_ids[0] if len(key_ids) == 1 else np.isin(keys, key_ids)
        if from_ms is not None:
            mine &= tiles * self.size >= from_ms
        rows = np.flatnonzero(mine)
        return rows[np.lexsort((tiles[rows], keys[rows]))]


class Tiles:
    """Every level of a view, and one :class:`~.intmap.IntMap` from ``(level, key, tile)``
    to the tile's row. A code packs the level (4 bits), the key id (27 bits) and the tile
    index relative to the level's origin (32 bits)."""

    KEY_BITS = 27

    def __init__(self, sizes: tuple[int, ...], fields: list[dict[str, tuple[Any, Any]]]) -> None:
        self.levels = [Level(i, size, f) for i, (size, f) in enumerate(zip(sizes, fields, strict=True))]
        self.index = IntMap()
        self.origins: list[int | None] = [None] * len(sizes)

    def codes(self, level: int, keys: np.ndarray, tiles: np.ndarray) -> np.ndarray:
        origin = self.origins[level]
        if origin is None:
            origin = self.origins[level] = int(tiles.min()) - (1 << 31) if len(tiles) else 0
        offset = tiles - origin
        if len(offset) and (int(offset.min()) < 0 or int(offset.max()) >= 1 << 32):
            raise OverflowError(f"tile index out of range of level {level}'s origin")
        if len(keys) and int(keys.max()) >= 1 << self.KEY_BITS:
            raise OverflowError(f"more than {1 << self.KEY_BITS} keys in one view")
        return (level << 59) | (keys << 32) | offset

    def locate(self, level: int, keys: np.ndarray, tiles: np.ndarray) -> np.ndarray:
        """Rows of the (unique) ``(key, tile)`` pairs, creating the missing ones."""
        try:
            codes = self.codes(level, keys, tiles)
        except OverflowError:
            self._reorigin(level, tiles)
            codes = self.codes(level, keys, tiles)
        cols = self.levels[level].cols
        rows, new = self.index.get_or_add(codes, cols.alloc)
        if new.any():
            fresh = rows[new]
            cols.get("key")[fresh] = keys[new]
            cols.get("tile")[fresh] = tiles[new]
        return rows

    def find(self, level: int, keys: np.ndarray, tiles: np.ndarray) -> np.ndarray:
        """Rows of ``(key, tile)`` pairs, -1 where absent."""
        if self.origins[level] is None or not len(tiles):
            return np.full(len(tiles), -1, dtype=np.int64)
        offset = tiles - self.origins[level]
        inside = (offset >= 0) & (offset < 1 << 32)
        out = np.full(len(tiles), -1, dtype=np.int64)
        out[inside] = self.index.get((level << 59) | (keys[inside] << 32) | offset[inside])
        return out

    def find_many(self, key_id: int, wanted: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        """Rows of one key's tiles on several levels (-1 where absent), one lookup."""
        if not wanted:
            return []
        sizes = [len(t) for _, t in wanted]
        tiles = np.concatenate([t for _, t in wanted])
        level = np.repeat(np.asarray([lv for lv, _ in wanted], dtype=np.int64), sizes)
        known = np.asarray([o is not None for o in self.origins])[level]
        offset = tiles - np.asarray([o or 0 for o in self.origins], dtype=np.int64)[level]
        inside = known & (offset >= 0) & (offset < 1 << 32)
        codes = (level << 59) | (key_id << 32) | np.where(inside, offset, 0)
        rows = np.where(inside, self.index.get(codes), -1)
        return np.split(rows, np.cumsum(sizes[:-1]))

    def drop(self, level: int, rows: np.ndarray) -> None:
        """Unlink ``rows`` and keep them for reuse."""
        lv = self.levels[level]
        if not len(rows):
            return
        keys, tiles = lv.cols.get("key")[rows], lv.cols.get("tile")[rows]
        self.index.delete(self.codes(level, keys, tiles))
        lv.cols.release(rows)

    def evict_before(self, level: int, time_ms: int) -> int:
        """Drop the tiles that start before ``time_ms``."""
        lv = self.levels[level]
        used = lv.cols.used
        keys, tiles = lv.cols.get("key")[:used], lv.cols.get("tile")[:used]
        gone = np.flatnonzero((keys >= 0) & (tiles * lv.size < time_ms))
        self.drop(level, gone)
        return len(gone)

    def rebuild(self) -> None:
        """Rebuild the index from the levels' ``key``/``tile`` columns (after a restore)."""
        self.index.clear()
        for lv in self.levels:
            live = lv.live()
            tiles = lv.cols.get("tile")[live]
            self.origins[lv.number] = int(tiles.min()) - (1 << 31) if len(tiles) else None
            if len(live):
                self.index.insert(self.codes(lv.number, lv.cols.get("key")[live], tiles), live)

    def _reorigin(self, level: int, tiles: np.ndarray) -> None:
        lv = self.levels[level]
        live = lv.live()
        old = lv.cols.get("tile")[live]
        everything = np.concatenate([old, tiles])
        low, high = int(everything.min()), int(everything.max())
        if high - low >= 1 << 32:
            raise OverflowError(f"level {level} spans more than 2**32 tiles; use a coarser hop")
        if len(live):
            self.index.delete(self.codes(level, lv.cols.get("key")[live], old))
        self.origins[level] = low - ((1 << 32) - 1 - (high - low)) // 2
        if len(live):
            self.index.insert(self.codes(level, lv.cols.get("key")[live], old), live)
