"""A hash map from int64 codes to int64 values, all in numpy: many lookups per call.

Open addressing with double hashing over two arrays (``codes``, ``values``); a lookup,
insert or delete of *n* codes is a handful of numpy operations per probe round, not *n*
Python dict operations, and holds no Python object per entry (nothing for the garbage
collector to walk). Codes must be non-negative (``-1`` marks an empty slot, ``-2`` a
deleted one). The table doubles at half full and is rebuilt when deletions pile up.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

EMPTY, GONE = -1, -2
_MULT = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing


class IntMap:
    def __init__(self, capacity: int = 1024) -> None:
        self._alloc(max(16, 1 << (capacity - 1).bit_length()))

    def _alloc(self, capacity: int) -> None:
        self.codes = np.full(capacity, EMPTY, dtype=np.int64)
        self.values = np.zeros(capacity, dtype=np.int64)
        self.mask = capacity - 1
        self.shift = np.uint64(64 - (capacity.bit_length() - 1))
        self.size = 0  # live entries
        self.used = 0  # live + deleted slots

    def __len__(self) -> int:
        return self.size

    def _slots(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First slot and probe step (odd: it visits every slot) of each code."""
        h = codes.astype(np.uint64) * _MULT
        return (h >> self.shift).astype(np.int64), (h & np.uint64(self.mask)).astype(np.int64) | 1

    def _find(self, codes: np.ndarray) -> np.ndarray:
        """The slot of each code, or -1 where it is absent."""
        slots, steps = self._slots(codes)
        out = np.full(len(codes), -1, dtype=np.int64)
        pending = np.arange(len(codes))
        while len(pending):
            at = slots[pending]
            found = self.codes[at]
            hit = found == codes[pending]
            out[pending[hit]] = at[hit]
            pending = pending[~hit & (found != EMPTY)]
            slots[pending] = (slots[pending] + steps[pending]) & self.mask
        return out

    def get(self, codes: np.ndarray, default: int = -1) -> np.ndarray:
        slots = self._find(codes)
        return np.where(slots >= 0, self.values[slots], default)

    def get_or_add(
        self, codes: np.ndarray, new_values: Callable[[int], np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Values of (distinct) codes; the absent ones are added with the values
        ``new_values(n)`` returns, in the order of ``codes``. Returns (values, added mask)."""
        if 2 * (self.used + len(codes)) > len(self.codes):
            self._rebuild(self.size + len(codes))
        slots, steps = self._slots(codes)
        at_slot = np.full(len(codes), -1, dtype=np.int64)
        added = np.zeros(len(codes), dtype=bool)
        pending = np.arange(len(codes))
        while len(pending):
            at = slots[pending]
            found = self.codes[at]
            hit = found == codes[pending]
            empty = found == EMPTY
            claim, claim_at = pending[empty], at[empty]
            self.codes[claim_at] = codes[claim]  # several may claim one slot: the last wins
            won = self.codes[claim_at] == codes[claim]
            added[claim[won]] = True
            done = hit.copy()
            done[np.flatnonzero(empty)[won]] = True
            at_slot[pending[done]] = at[done]
            pending = pending[~done]
            slots[pending] = (slots[pending] + steps[pending]) & self.mask
        n_new = int(added.sum())
        self.values[at_slot[added]] = new_values(n_new)
        self.size += n_new
        self.used += n_new
        return self.values[at_slot], added

    def insert(self, codes: np.ndarray, values: np.ndarray) -> None:
        """Add codes that are absent (and distinct)."""
        if 2 * (self.used + len(codes)) > len(self.codes):
            self._rebuild(self.size + len(codes))
        slots, steps = self._slots(codes)
        pending = np.arange(len(codes))
        while len(pending):
            at = slots[pending]
            free = self.codes[at] < 0
            cand, cand_at = pending[free], at[free]
            was_empty = self.codes[cand_at] == EMPTY
            # several codes may want one free slot: the last write wins, the others go on
            self.codes[cand_at] = codes[cand]
            landed = self.codes[cand_at] == codes[cand]
            self.values[cand_at[landed]] = values[cand[landed]]
            self.used += int((landed & was_empty).sum())
            placed = np.zeros(len(codes), dtype=bool)
            placed[cand[landed]] = True
            pending = pending[~placed[pending]]
            slots[pending] = (slots[pending] + steps[pending]) & self.mask
        self.size += len(codes)

    def set_values(self, codes: np.ndarray, values: np.ndarray) -> None:
        """New values for codes that are present."""
        self.values[self._find(codes)] = values

    def delete(self, codes: np.ndarray) -> None:
        slots = self._find(codes)
        slots = slots[slots >= 0]
        self.codes[slots] = GONE
        self.size -= len(slots)
        if self.used > 2 * self.size + 1024:
            self._rebuild(self.size)

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        live = self.codes >= 0
        return self.codes[live], self.values[live]

    def _rebuild(self, wanted: int) -> None:
        codes, values = self.items()
        self._alloc(max(16, 1 << (4 * max(wanted, 1) - 1).bit_length()))
        if len(codes):
            self.insert(codes, values)

    def clear(self) -> None:
        self._alloc(1024)
