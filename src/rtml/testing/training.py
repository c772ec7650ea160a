"""A brute-force training set, for holding the offline stores' SQL to the semantics.

For each spine row (keys, time ``t``): every feature from :func:`rtml.testing.oracle.view_values`,
the on-demand features evaluated in-process (:func:`rtml.core.sqleval.compile_expression`)
and the label by scanning the events: 1 iff an outcome event with the same keys has
event time in ``(t, t + horizon]``. Slow on purpose; use a few thousand events.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rtml.core.sqleval import compile_expression, compile_filter
from rtml.definitions.model import Model
from rtml.testing.oracle import OracleEvent, view_values


@dataclass(frozen=True)
class SpinePoint:
    keys: Mapping[str, Any]
    t_ms: int
    request: Mapping[str, Any]


def label_spine(model: Model, events: Iterable[OracleEvent]) -> list[SpinePoint]:
    """The label's prediction points: events matching ``prediction_where`` with all keys set."""
    label = model.label
    keep = compile_filter(label.prediction_where)
    points = []
    for event in sorted(events, key=lambda e: (e.ts_ms, e.event_id)):
        keys = {k: event.row.get(k) for k in label.join_keys}
        if keep(event.row) and all(v is not None for v in keys.values()):
            request = {name: event.row.get(name) for name in model.request_fields}
            points.append(SpinePoint(keys, event.ts_ms, request))
    return points


def expected_rows(
    model: Model, events: Sequence[OracleEvent], spine: Iterable[SpinePoint]
) -> list[dict[str, Any]]:
    """One dict per spine point: the features by qualified name, the on-demand features
    and ``label`` (``None`` when ``t + horizon`` is past the last event)."""
    by_key: dict[tuple[str, ...], dict[tuple[Any, ...], list[OracleEvent]]] = {}
    for view in model.feature_views:
        index: dict[tuple[Any, ...], list[OracleEvent]] = defaultdict(list)
        for event in events:
            index[tuple(event.row.get(k) for k in view.join_keys)].append(event)
        by_key[view.join_keys] = index
    label = model.label
    outcome = compile_filter(label.outcome_where)
    horizon_ms = int(label.horizon_span.total_seconds() * 1000)
    last_ts = max((e.ts_ms for e in events), default=None)
    outcomes: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for event in events:
        if outcome(event.row):
            outcomes[tuple(event.row.get(k) for k in label.join_keys)].append(event.ts_ms)
    on_demand = [(f.name, compile_expression(f.parsed)) for f in model.on_demand]
    wanted = set(model.feature_names)
    rows = []
    for point in spine:
        row: dict[str, Any] = {}
        for view in model.feature_views:
            key = {k: point.keys[k] for k in view.join_keys}
            mine = by_key[view.join_keys].get(tuple(key.values()), [])
            values = view_values(view, mine, key, point.t_ms)
            row.update({f"{view.name}__{n}": v for n, v in values.items() if f"{view.name}__{n}" in wanted})
        scope = {**point.request, **row}
        for name, evaluate in on_demand:
            row[name] = evaluate(scope)
        times = outcomes.get(tuple(point.keys[k] for k in label.join_keys), [])
        complete = last_ts is not None and point.t_ms + horizon_ms <= last_ts
        row["label"] = (
            int(any(point.t_ms < ts <= point.t_ms + horizon_ms for ts in times)) if complete else None
        )
        rows.append(row)
    return rows


def same_value(got: Any, expected: Any, rel: float = 1e-9) -> bool:
    """Integers and text exactly, floats within ``rel`` relative, NULL only with NULL."""
    if expected is None or got is None:
        return got is None and expected is None
    if isinstance(expected, float) or isinstance(got, float):
        if math.isnan(expected) or math.isnan(got):
            return math.isnan(expected) and math.isnan(got)
        return math.isclose(float(got), float(expected), rel_tol=rel, abs_tol=0.0) or got == expected
    return bool(got == expected)


def mismatches(got: Sequence[Mapping[str, Any]], expected: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every (row, column) where ``got`` differs from ``expected``, as readable lines."""
    problems = []
    if len(got) != len(expected):
        problems.append(f"{len(got)} rows, expected {len(expected)}")
    for index, (g, e) in enumerate(zip(got, expected, strict=False)):
        for column, value in e.items():
            if not same_value(g.get(column), value):
                problems.append(f"row {index} {column}: got {g.get(column)!r}, expected {value!r}")
    return problems
