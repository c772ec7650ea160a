"""What a model's training set needs, worked out from its definitions (no SQL yet).

The features of a model are grouped by (feature view, hop): every feature of a group is
computed from the same hop tiles of the view's source, in one pass. Each group lists its
aggregations (function, column, ``where``) and, per aggregation, the windows the model
uses -- a model that names single features (``view["views_1h"]``) gets only those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from rtml.core.pit.layout import EventTable
from rtml.definitions.feature_view import Aggregation, FeatureRef, FeatureView
from rtml.definitions.model import Model
from rtml.definitions.schema import ColumnKind
from rtml.definitions.sql import SqlExpression, parse_expression
from rtml.errors import DefinitionError


def ms(span: timedelta) -> int:
    return int(span / timedelta(milliseconds=1))


@dataclass(frozen=True)
class WindowSpec:
    window_ms: int
    name: str  # the qualified feature name, e.g. user_activity__views_1h


@dataclass(frozen=True)
class AggSpec:
    """One aggregation of a group and the windows of it the model uses."""

    function: str
    column: str | None
    where: SqlExpression | None
    column_kind: ColumnKind | None  # the column's kind in the schema (None for count(*))
    windows: tuple[WindowSpec, ...]


@dataclass(frozen=True)
class ViewGroup:
    """The features of one view that share one hop."""

    view: str
    table: EventTable
    keys: tuple[str, ...]
    hop_ms: int
    aggs: tuple[AggSpec, ...]


@dataclass(frozen=True)
class OnDemandSpec:
    name: str
    expression: SqlExpression


@dataclass(frozen=True)
class LabelSpec:
    name: str
    table: EventTable
    keys: tuple[str, ...]
    prediction_where: SqlExpression
    outcome_where: SqlExpression
    horizon_ms: int


@dataclass(frozen=True)
class TrainingSetPlan:
    model: str
    label: LabelSpec
    groups: tuple[ViewGroup, ...]
    on_demand: tuple[OnDemandSpec, ...]
    request: dict[str, str] = field(default_factory=dict)  # request field -> on-demand type
    feature_names: tuple[str, ...] = ()  # the model's inputs, in order


def plan_training_set(model: Model, tables: dict[str, EventTable]) -> TrainingSetPlan:
    """The plan of ``model``'s training set over the events tables ``tables`` (by source)."""
    label = model.label
    label_spec = LabelSpec(
        name=label.name,
        table=_table(tables, label.source.name),
        keys=label.join_keys,
        prediction_where=_parsed(label.prediction_where, label.title, "prediction_where"),
        outcome_where=_parsed(label.outcome_where, label.title, "outcome_where"),
        horizon_ms=ms(label.horizon_span),
    )
    wanted = _wanted_features(model)
    groups: list[ViewGroup] = []
    for view in model.feature_views:
        table = _table(tables, view.source.name)
        by_hop: dict[int, list[AggSpec]] = {}
        for agg in view.aggregations:
            windows = tuple(
                WindowSpec(ms(f.window), f.qualified_name)
                for f in view.features
                if f.aggregation is agg and f.qualified_name in wanted
            )
            if windows:
                by_hop.setdefault(ms(agg.hop_span), []).append(_agg_spec(agg, windows, table))
        for hop_ms in sorted(by_hop):
            groups.append(
                ViewGroup(
                    view=view.name,
                    table=table,
                    keys=view.join_keys,
                    hop_ms=hop_ms,
                    aggs=tuple(by_hop[hop_ms]),
                )
            )
    on_demand = tuple(OnDemandSpec(f.name, f.parsed) for f in model.on_demand)
    return TrainingSetPlan(
        model=model.name,
        label=label_spec,
        groups=tuple(groups),
        on_demand=on_demand,
        request=dict(model.request_fields),
        feature_names=tuple(model.feature_names),
    )


def _wanted_features(model: Model) -> set[str]:
    wanted: set[str] = set()
    for item in model.features:
        if isinstance(item, FeatureView):
            wanted.update(f.qualified_name for f in item.features)
        elif isinstance(item, FeatureRef):
            wanted.add(item.qualified_name)
    return wanted


def _agg_spec(agg: Aggregation, windows: tuple[WindowSpec, ...], table: EventTable) -> AggSpec:
    kind = table.kind(agg.column) if agg.column is not None else None
    if agg.column is not None and kind is None:
        raise DefinitionError(
            f"column {agg.column!r} is not in the events table of source {table.source!r}",
            obj=f"Aggregation {agg.name!r}",
            field="column",
            fix="use a column of the source's schema",
        )
    return AggSpec(
        function=agg.function,
        column=agg.column,
        where=agg.where_expression,
        column_kind=kind,
        windows=tuple(sorted(windows, key=lambda w: w.window_ms)),
    )


def _table(tables: dict[str, EventTable], source: str) -> EventTable:
    try:
        return tables[source]
    except KeyError:
        raise DefinitionError(
            f"no events table for source {source!r}",
            fix="load the source's definitions (rtml apply) and append its events first",
        ) from None


def _parsed(text: str, obj: str, field_name: str) -> SqlExpression:
    return parse_expression(text, obj=obj, field=field_name)
