"""A batch of valid events in columns: what the aggregation runtime applies.

``EventBatch.from_columns(ts_ms, event_id, {"user_id": [...], "price": [...], ...})`` takes
lists or numpy arrays; each column is normalized once (:func:`column`) into a numpy array
and a validity mask (SQL ``NULL`` is Python ``None``), and shared by every view and every
``where`` filter applied to the batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rtml.errors import InvalidInputError

Kind = Literal["int", "float", "bool", "str", "object", "null"]
NUMERIC: frozenset[str] = frozenset({"int", "float", "bool"})


@dataclass(frozen=True)
class Column:
    """One column: ``values`` (int64, float64, bool or object) and ``valid`` (``None``: no NULLs).

    Where a value is NULL, ``values`` holds 0 (numeric kinds) or ``None`` (object kinds).
    """

    values: np.ndarray
    valid: np.ndarray | None
    kind: Kind

    def python(self) -> list[Any]:
        """The values as Python objects, ``None`` for NULL."""
        out: list[Any] = self.values.tolist()
        if self.valid is not None and self.kind in NUMERIC:
            out = [v if ok else None for v, ok in zip(out, self.valid.tolist(), strict=True)]
        return out

    def take(self, index: np.ndarray) -> Column:
        valid = None if self.valid is None else self.valid[index]
        return Column(self.values[index], valid, self.kind)

    @property
    def valid_mask(self) -> np.ndarray:
        return np.ones(len(self.values), dtype=bool) if self.valid is None else self.valid


def column(data: Sequence[Any] | np.ndarray) -> Column:
    """Normalize a column of Python values (``None`` = NULL) or a numpy array."""
    if isinstance(data, np.ndarray) and data.dtype.kind != "O":
        return _typed(data)
    if not isinstance(data, np.ndarray):
        first = next((v for v in data if v is not None), None)
        if isinstance(first, int | float):  # fast path: numbers without NULLs
            try:
                typed = np.asarray(data)
            except (ValueError, TypeError, OverflowError):
                typed = np.asarray([], dtype=object)
            if typed.ndim == 1 and typed.dtype.kind in "ifb":
                return _typed(typed)
    arr = np.empty(len(data), dtype=object)
    arr[:] = list(data)
    valid = np.fromiter((v is not None for v in arr), dtype=bool, count=len(arr))
    all_valid = bool(valid.all())
    present = arr if all_valid else arr[valid]
    types = set(map(type, present.tolist()))
    if not types:
        return Column(arr, valid, "null")
    if types <= {int, float, bool}:
        dtype: Any = np.float64 if float in types else (np.bool_ if types == {bool} else np.int64)
        values: np.ndarray = np.zeros(len(arr), dtype=dtype)
        values[valid] = np.asarray(present.tolist(), dtype=dtype)
        kind: Kind = "float" if dtype is np.float64 else ("bool" if dtype is np.bool_ else "int")
        return Column(values, None if all_valid else valid, kind)
    kind = "str" if types == {str} else "object"
    return Column(arr, None if all_valid else valid, kind)


def _typed(arr: np.ndarray) -> Column:
    kind = arr.dtype.kind
    if kind in "iu":
        return Column(arr.astype(np.int64, copy=False), None, "int")
    if kind == "f":
        return Column(arr.astype(np.float64, copy=False), None, "float")
    if kind == "b":
        return Column(arr, None, "bool")
    if kind == "U":
        return Column(arr.astype(object), None, "str")
    raise InvalidInputError(f"cannot aggregate a column of numpy dtype {arr.dtype}")


@dataclass
class EventBatch:
    """Events in columns: ``ts_ms`` (int64), ``event_id`` (str) and named columns."""

    ts_ms: np.ndarray
    event_id: np.ndarray
    columns: dict[str, Column]
    _masks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _eid_order: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_columns(
        cls,
        ts_ms: Sequence[int] | np.ndarray,
        event_id: Sequence[str] | np.ndarray,
        columns: Mapping[str, Sequence[Any] | np.ndarray],
    ) -> EventBatch:
        ts = np.asarray(ts_ms, dtype=np.int64)
        ids = np.asarray(event_id, dtype=object)
        if ts.ndim != 1 or ids.shape != ts.shape:
            raise InvalidInputError("ts_ms and event_id must be 1-d and of the same length")
        cols = {name: column(values) for name, values in columns.items()}
        for name, col in cols.items():
            if len(col.values) != len(ts):
                raise InvalidInputError(f"column {name!r} has {len(col.values)} values, expected {len(ts)}")
        return cls(ts, ids, cols)

    @classmethod
    def from_rows(
        cls, rows: Iterable[Mapping[str, Any]], *, ts_field: str = "ts_ms", id_field: str = "event_id"
    ) -> EventBatch:
        """From dict rows (tests, small inputs); ``ts_field`` holds ms since the epoch."""
        rows = list(rows)
        names = sorted({k for r in rows for k in r} - {ts_field, id_field})
        return cls.from_columns(
            [r[ts_field] for r in rows],
            [r[id_field] for r in rows],
            {n: [r.get(n) for r in rows] for n in names},
        )

    def __len__(self) -> int:
        return len(self.ts_ms)

    def col(self, name: str) -> Column:
        """A column; an absent one reads as all NULL (as a missing key does in a row)."""
        found = self.columns.get(name)
        if found is None:
            found = Column(np.full(len(self), None, dtype=object), np.zeros(len(self), bool), "null")
            self.columns[name] = found
        return found

    def mask(self, key: str, compute: Any) -> np.ndarray:
        """A cached boolean mask (a ``where`` filter's result), computed once per batch."""
        found = self._masks.get(key)
        if found is None:
            found = self._masks[key] = compute(self)
        return found

    def eid_order(self) -> np.ndarray:
        """``event_id`` as a sortable numpy unicode array (for ``last``'s tie-break)."""
        if self._eid_order is None:
            self._eid_order = np.asarray(self.event_id.tolist(), dtype=str)
        return self._eid_order

    def rows(self) -> list[dict[str, Any]]:
        """The events as dict rows (the slow, general fallback of ``where`` filters)."""
        names = list(self.columns)
        values = [self.columns[n].python() for n in names]
        return (
            [dict(zip(names, vals, strict=True)) for vals in zip(*values, strict=True)]
            if names
            else [{} for _ in range(len(self))]
        )
