"""The numpy hash map behind the tile index, against a dict."""

from __future__ import annotations

import numpy as np

from rtml.core.aggregation.intmap import IntMap


def test_intmap_behaves_as_a_dict() -> None:
    rng = np.random.default_rng(0)
    m, ref = IntMap(16), {}
    next_value = 0
    for _ in range(300):
        codes = np.unique(rng.integers(0, 3000, rng.integers(1, 400)))
        assert m.get(codes).tolist() == [ref.get(c, -1) for c in codes.tolist()]
        start = next_value
        values, added = m.get_or_add(codes, lambda n, start=start: np.arange(start, start + n))
        for c, v, a in zip(codes.tolist(), values.tolist(), added.tolist(), strict=True):
            if a:
                assert c not in ref and v == next_value
                ref[c] = v
                next_value += 1
            else:
                assert ref[c] == v
        gone = codes[rng.random(len(codes)) < 0.4]
        m.delete(gone)
        for c in gone.tolist():
            ref.pop(c)
        fresh = np.setdiff1d(np.unique(rng.integers(3000, 6000, 50)), np.fromiter(ref, dtype=np.int64))
        m.insert(fresh, fresh * 2)
        ref.update({c: c * 2 for c in fresh.tolist()})
        moved = np.fromiter(list(ref)[:5], dtype=np.int64)
        m.set_values(moved, moved + 7)
        ref.update({c: c + 7 for c in moved.tolist()})
        assert len(m) == len(ref)
    codes, values = m.items()
    assert dict(zip(codes.tolist(), values.tolist(), strict=True)) == ref


def test_intmap_handles_large_codes() -> None:
    m = IntMap()
    codes = np.asarray([0, 1, 2**62, 2**63 - 1, 12345678901234], dtype=np.int64)
    m.insert(codes, np.arange(5))
    assert m.get(codes).tolist() == [0, 1, 2, 3, 4]
    assert m.get(np.asarray([3, 2**62 + 1])).tolist() == [-1, -1]
