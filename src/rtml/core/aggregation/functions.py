"""The seven aggregation functions as small partial aggregates, one event at a time.

Each function is an object with ``init() -> P``, ``update(P, value, ts_ms, event_id) -> P``,
``merge(P, P) -> P`` and ``result(P) -> value``. A partial ``P`` ("tile") summarizes any
set of events; ``merge`` is associative and commutative, so tiles of any split of the
events merge to the same result. The caller applies the ``where`` filter; ``update``
gets the column's value (``None`` for SQL ``NULL``) of each event that passed it.

These are the reference the vectorized kernels (:mod:`.kernels`) are tested against, and
what the per-event peer of ``bench/aggregation.py`` runs. The rules (``rtml.testing.oracle``):

* empty: ``count``/``count_distinct``/``sum`` give 0; ``mean``/``min``/``max``/``last`` ``None``;
* ``count`` without a column counts events, with a column its non-NULL values; the others
  ignore NULLs, except ``last``: the value (NULL included) of the latest event, latest by
  ``(ts_ms, event_id)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

Last = tuple[int, str, Any] | None  # (ts_ms, event_id, value)


class Function(Protocol):
    """A partial aggregate: ``init``/``update``/``merge``/``result``."""

    def init(self) -> Any: ...

    def update(self, acc: Any, value: Any, ts_ms: int, event_id: str) -> Any: ...

    def merge(self, a: Any, b: Any) -> Any: ...

    def result(self, acc: Any) -> Any: ...


@dataclass(frozen=True)
class Count:
    """Events (``counts_nulls=True``: ``count`` without a column) or non-NULL values."""

    counts_nulls: bool = False

    def init(self) -> int:
        return 0

    def update(self, acc: int, value: Any, ts_ms: int, event_id: str) -> int:
        return acc + 1 if self.counts_nulls or value is not None else acc

    def merge(self, a: int, b: int) -> int:
        return a + b

    def result(self, acc: int) -> int:
        return acc


@dataclass(frozen=True)
class Sum:
    def init(self) -> int | float:
        return 0

    def update(self, acc: float, value: Any, ts_ms: int, event_id: str) -> float:
        return acc if value is None else acc + value

    def merge(self, a: float, b: float) -> float:
        return a + b

    def result(self, acc: float) -> float:
        return acc


@dataclass(frozen=True)
class Mean:
    """Partial: ``(sum, count)`` of the non-NULL values."""

    def init(self) -> tuple[float, int]:
        return (0, 0)

    def update(self, acc: tuple[float, int], value: Any, ts_ms: int, event_id: str) -> tuple[float, int]:
        return acc if value is None else (acc[0] + value, acc[1] + 1)

    def merge(self, a: tuple[float, int], b: tuple[float, int]) -> tuple[float, int]:
        return (a[0] + b[0], a[1] + b[1])

    def result(self, acc: tuple[float, int]) -> float | None:
        return acc[0] / acc[1] if acc[1] else None


@dataclass(frozen=True)
class Extreme:
    """``min`` (``largest=False``) or ``max``; partial: the extreme value or ``None``."""

    largest: bool = False

    def init(self) -> Any:
        return None

    def update(self, acc: Any, value: Any, ts_ms: int, event_id: str) -> Any:
        return self.merge(acc, value)

    def merge(self, a: Any, b: Any) -> Any:
        if a is None or b is None:
            return b if a is None else a
        return max(a, b) if self.largest else min(a, b)

    def result(self, acc: Any) -> Any:
        return acc


@dataclass(frozen=True)
class LastValue:
    """Partial: ``(ts_ms, event_id, value)`` of the latest event, or ``None``."""

    def init(self) -> Last:
        return None

    def update(self, acc: Last, value: Any, ts_ms: int, event_id: str) -> Last:
        return self.merge(acc, (ts_ms, event_id, value))

    def merge(self, a: Last, b: Last) -> Last:
        if a is None or b is None:
            return b if a is None else a
        return b if (b[0], b[1]) > (a[0], a[1]) else a

    def result(self, acc: Last) -> Any:
        return None if acc is None else acc[2]


@dataclass(frozen=True)
class CountDistinct:
    """Exact: the partial is the set of distinct non-NULL values."""

    def init(self) -> frozenset[Any]:
        return frozenset()

    def update(self, acc: frozenset[Any], value: Any, ts_ms: int, event_id: str) -> frozenset[Any]:
        return acc if value is None else acc | {value}

    def merge(self, a: frozenset[Any], b: frozenset[Any]) -> frozenset[Any]:
        return a | b

    def result(self, acc: frozenset[Any]) -> int:
        return len(acc)


def function_for(name: str, column: str | None) -> Function:
    """The partial aggregate of an :class:`~rtml.definitions.Aggregation`'s function."""
    table: dict[str, Function] = {
        "count": Count(counts_nulls=column is None),
        "sum": Sum(),
        "mean": Mean(),
        "min": Extreme(largest=False),
        "max": Extreme(largest=True),
        "last": LastValue(),
        "count_distinct": CountDistinct(),
    }
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown aggregation function {name!r}; use one of {', '.join(table)}") from None
