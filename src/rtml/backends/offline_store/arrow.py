"""Arrow on both sides of the offline store: events in, spines in, training sets out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rtml.backends.offline_store.base import StoredEvent
from rtml.core.pit import (
    EVENT_ID,
    EVENT_TIME,
    LABEL,
    SPINE_ROW,
    TS_MS,
    EventTable,
    SpineSource,
    TrainingSetPlan,
)
from rtml.core.pit.sql import output_kind
from rtml.definitions.schema import ColumnKind
from rtml.errors import InvalidInputError
from rtml.timeutil import parse_timestamp

UTC_MS = pa.timestamp("ms", tz="UTC")
_ARROW: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "other": pa.string(),
    # on-demand request types
    "double": pa.float64(),
    "bigint": pa.int64(),
}


def arrow_type(kind: str) -> pa.DataType:
    return _ARROW[kind]


def events_table(table: EventTable, events: Sequence[StoredEvent]) -> pa.Table:
    """``events`` as an Arrow table in the layout of ``table``, repeats of an id dropped."""
    seen: set[str] = set()
    unique: list[StoredEvent] = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            unique.append(event)
    columns: dict[str, pa.Array] = {
        EVENT_ID: pa.array([e.event_id for e in unique], pa.string()),
        TS_MS: pa.array([e.ts_ms for e in unique], pa.int64()),
    }
    for column in table.columns:
        if column.name == table.timestamp_field:
            columns[column.name] = columns[TS_MS].cast(UTC_MS).cast(arrow_type("timestamp"))
            continue
        values = [e.row.get(column.name) for e in unique]
        columns[column.name] = _column(column.name, column.kind, values)
    return pa.table(columns)


def _column(name: str, kind: ColumnKind, values: list[Any]) -> pa.Array:
    try:
        if kind == "timestamp":
            values = [v if v is None or isinstance(v, datetime) else parse_timestamp(str(v)) for v in values]
        elif kind == "other":
            values = [None if v is None else json.dumps(v, separators=(",", ":")) for v in values]
        return pa.array(values, arrow_type(kind))
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(
            f"column {name!r}: a value does not fit the schema's type {kind} ({exc}). "
            "Fix: append only events the validator accepted"
        ) from None


def normalize_spine(spine: pa.Table, plan: TrainingSetPlan) -> tuple[pa.Table, SpineSource]:
    """A user's spine as the query binds it: the label's keys, ``t`` (ms), the request
    fields it has, and ``spine_row`` (its row number). The time column is the label
    source's timestamp field (e.g. ``event_time``) or ``ts_ms``: a timestamp with a zone,
    an ISO-8601 string with a zone, or integer milliseconds."""
    label = plan.label
    names = set(spine.column_names)
    missing = [k for k in label.keys if k not in names]
    time_column = next((c for c in (label.table.timestamp_field, TS_MS) if c in names), None)
    if missing or time_column is None:
        need = [*label.keys, label.table.timestamp_field]
        raise InvalidInputError(
            f"the spine has columns {sorted(names)} and lacks "
            f"{', '.join(missing) or label.table.timestamp_field}. Fix: give one column per "
            f"join key and the time of each row: {', '.join(need)} (or ts_ms in milliseconds)"
        )
    columns: dict[str, pa.Array] = {}
    for key in label.keys:
        columns[key] = _cast(spine.column(key), arrow_type(label.table.kind(key) or "string"), key)
    columns["t"] = _millis(spine.column(time_column), time_column)
    present: list[str] = []
    for name, kind in plan.request.items():
        if name in names and name not in label.keys:
            columns[name] = _cast(spine.column(name), arrow_type(kind), name)
            present.append(name)
    columns[SPINE_ROW] = pa.array(range(spine.num_rows), pa.int64())
    return pa.table(columns), SpineSource(kind="table", request_columns=tuple(present))


def _cast(column: pa.ChunkedArray, to: pa.DataType, name: str) -> pa.ChunkedArray:
    try:
        return column.cast(to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInputError(f"spine column {name!r} cannot be read as {to} ({exc})") from None


def _millis(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_integer(kind):
        return column.cast(pa.int64())
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            raise InvalidInputError(
                f"spine column {name!r} holds times without a zone. Fix: write them in UTC with a "
                "zone, e.g. 2019-10-01T00:00:00Z"
            )
        return column.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        try:
            stamps = [None if v is None else parse_timestamp(v) for v in column.to_pylist()]
        except ValueError as exc:
            raise InvalidInputError(f"spine column {name!r}: {exc}") from None
        return (
            pa.chunked_array([pa.array(stamps, pa.timestamp("us", tz="UTC"))]).cast(UTC_MS).cast(pa.int64())
        )
    raise InvalidInputError(f"spine column {name!r} has type {kind}; give times or integer milliseconds")


def training_set_schema(plan: TrainingSetPlan, spine: SpineSource) -> pa.Schema:
    """The columns of a training set, in the order the query returns them (``ts_ms`` as
    integer ms; :func:`finish` turns it into ``event_time``). On-demand features are
    typed by the engine (their type is not known before)."""
    label = plan.label
    fields = [
        pa.field(EVENT_ID, pa.string()) if spine.kind == "label" else pa.field(SPINE_ROW, pa.int64()),
        *(pa.field(k, arrow_type(label.table.kind(k) or "string")) for k in label.keys),
        pa.field(TS_MS, pa.int64()),
        *(pa.field(n, arrow_type(t)) for n, t in plan.request.items() if n not in label.keys),
    ]
    kinds = {w.name: output_kind(agg) for g in plan.groups for agg in g.aggs for w in agg.windows}
    on_demand = {od.name for od in plan.on_demand}
    fields += [
        pa.field(name, arrow_type(kinds[name])) for name in plan.feature_names if name not in on_demand
    ]
    return pa.schema(fields)


def finish(result: pa.Table, plan: TrainingSetPlan, spine: SpineSource) -> pa.Table:
    """The query's result with the planned types, ``ts_ms`` turned into ``event_time``
    (UTC) and the label as int64 (NULL where its horizon is incomplete)."""
    schema = training_set_schema(plan, spine)
    columns: dict[str, pa.ChunkedArray] = {}
    for name in result.column_names:
        column = result.column(name)
        if name in schema.names:
            column = column.cast(schema.field(name).type)
        if name == TS_MS:
            columns[EVENT_TIME] = column.cast(UTC_MS)
            continue
        if name == LABEL:
            column = column.cast(pa.int64())
        columns[name] = column
    return pa.table(columns)


def rows_to_table(
    rows: list[tuple[Any, ...]], names: list[str], plan: TrainingSetPlan, spine: SpineSource
) -> pa.Table:
    """A training set fetched as Python rows (PostgreSQL) as Arrow with the planned types."""
    schema = training_set_schema(plan, spine)
    arrays: dict[str, pa.Array] = {}
    for index, name in enumerate(names):
        values = [row[index] for row in rows]
        if name in schema.names:
            arrays[name] = pa.array(values, schema.field(name).type)
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays) if names else pa.table({})


def count_true(column: pa.ChunkedArray) -> int:
    return int(pc.sum(column).as_py() or 0)
