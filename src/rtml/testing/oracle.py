"""A brute-force oracle of feature values, written straight from the semantics.

It is slow on purpose: no tiles, no state, no SQL engine. Every backend (the embedded
engine and online store, Redis, the DuckDB and PostgreSQL training sets, Spark) is held
against it in the consistency tests.

The semantics (DESIGN.md, docs/features.md):

* the value at time ``t`` (ms since the epoch) for a key uses only events of that key
  with event time **strictly before** ``t``;
* a window ``w`` with hop ``h`` covers ``[floor(t - w, h), t)``: exact at the head,
  hop-aligned at the tail (``floor(x, h)`` rounds down to a multiple of ``h`` since the
  epoch);
* the aggregation's SQL ``where`` keeps an event only when it is TRUE;
* with no event in the window: ``count`` and ``count_distinct`` are 0, ``sum`` is 0,
  ``mean``/``min``/``max``/``last`` are ``None`` (missing);
* ``count`` without a column counts events; with a column, events where it is not NULL;
  ``sum``/``mean``/``min``/``max``/``count_distinct`` ignore NULLs (and a window whose
  values are all NULL gives the empty result above);
* ``last`` is the column's value (NULL included) of the latest event, ties in event time
  broken by the larger ``event_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rtml.core.sqleval import compile_filter
from rtml.definitions.feature_view import Aggregation, Feature, FeatureView


@dataclass(frozen=True)
class OracleEvent:
    """One valid event: its time (ms), id and columns."""

    ts_ms: int
    event_id: str
    row: Mapping[str, Any]


def window_start(t_ms: int, window: timedelta, hop: timedelta) -> int:
    """``floor(t - w, h)`` in ms."""
    w_ms, h_ms = _ms(window), _ms(hop)
    return ((t_ms - w_ms) // h_ms) * h_ms


def empty_value(function: str) -> Any:
    return 0 if function in {"count", "count_distinct", "sum"} else None


def aggregate(function: str, events: Sequence[OracleEvent], column: str | None) -> Any:
    """The aggregation of ``events`` (already filtered to the window and ``where``)."""
    if function == "count":
        if column is None:
            return len(events)
        return sum(1 for e in events if e.row.get(column) is not None)
    if function == "last":
        if not events:
            return None
        latest = max(events, key=lambda e: (e.ts_ms, e.event_id))
        return latest.row.get(column or "")
    values: list[Any] = [e.row.get(column or "") for e in events]
    values = [v for v in values if v is not None]
    if not values:
        return empty_value(function)
    if function == "sum":
        return sum(values)
    if function == "mean":
        return sum(values) / len(values)
    if function == "min":
        return min(values)
    if function == "max":
        return max(values)
    if function == "count_distinct":
        return len(set(values))
    raise ValueError(f"unknown function {function!r}")


def feature_value(feature: Feature, events: Iterable[OracleEvent], t_ms: int) -> Any:
    """The value of one feature at ``t_ms`` over ``events`` (all of one key)."""
    agg: Aggregation = feature.aggregation
    start = window_start(t_ms, feature.window, agg.hop_span)
    keep = compile_filter(agg.where_expression) if agg.where_expression is not None else None
    chosen = [e for e in events if start <= e.ts_ms < t_ms and (keep is None or keep(e.row))]
    return aggregate(agg.function, chosen, agg.column)


def view_values(
    view: FeatureView, events: Iterable[OracleEvent], key: Mapping[str, Any], t_ms: int
) -> dict[str, Any]:
    """Every feature of ``view`` at ``t_ms`` for the entity ``key`` (join key -> value)."""
    mine = [e for e in events if all(e.row.get(k) == v for k, v in key.items())]
    return {f.name: feature_value(f, mine, t_ms) for f in view.features}


def _ms(span: timedelta) -> int:
    return int(span / timedelta(milliseconds=1))
