"""Checks across definitions: columns against schemas, keys, feature references."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from rtml.definitions.base import Definition
from rtml.definitions.feature_view import FeatureView
from rtml.definitions.label import Label
from rtml.definitions.loader import Definitions
from rtml.definitions.model import Model
from rtml.definitions.schema import NUMERIC, SourceSchema
from rtml.definitions.source import Source
from rtml.definitions.sql import check_columns, parse_expression
from rtml.errors import DefinitionError


def check_definitions(defs: Definitions) -> None:
    """Raise the first DefinitionError found, located at the object it is about."""
    checks: list[tuple[Definition, Callable[[], None]]] = []
    for source in defs.sources.values():
        checks.append((source, partial(_check_source, source, defs.schemas[source.name])))
    for view in defs.feature_views.values():
        checks.append((view, partial(_check_view, view, _schema_of(defs, view, view.source))))
    for label in defs.labels.values():
        checks.append((label, partial(_check_label, label, _schema_of(defs, label, label.source))))
    for model in defs.models.values():
        checks.append((model, partial(_check_model, model, defs)))
    for owner, check in checks:
        try:
            check()
        except DefinitionError as err:
            raise err.with_origin(owner.origin) from None


def _schema_of(defs: Definitions, owner: FeatureView | Label, source: Source) -> SourceSchema:
    if defs.sources.get(source.name) is not source and defs.sources.get(source.name) != source:
        raise owner.fail(
            "source",
            f"source {source.name!r} is not defined at module level in the project",
            "define the Source in one of the project's .py files",
        )
    return defs.schemas[source.name]


def _require_columns(
    owner: Source | FeatureView | Label, field: str, names: tuple[str, ...], schema: SourceSchema
) -> None:
    for name in names:
        if name not in schema.names:
            raise owner.fail(
                field,
                f"column {name!r} is not in the schema",
                f"use one of {', '.join(sorted(schema.names))}",
            )


def _check_source(source: Source, schema: SourceSchema) -> None:
    _require_columns(source, "timestamp_field", (source.timestamp_field,), schema)
    _require_columns(source, "id_field", (source.id_field,), schema)
    for rule in source.rule_expressions:
        check_columns(rule, schema.names, obj=source.title, field="rules")


def _check_view(view: FeatureView, schema: SourceSchema) -> None:
    _require_columns(view, "entities", view.join_keys, schema)
    for agg in view.aggregations:
        field = f"aggregations[{agg.name}]"
        if agg.column is not None:
            _require_columns(view, f"{field}.column", (agg.column,), schema)
            column = schema.column(agg.column)
            if agg.function in {"sum", "mean", "min", "max"} and column and column.kind not in NUMERIC:
                raise view.fail(
                    f"{field}.function",
                    f"{agg.function} needs a numeric column but {agg.column!r} is {column.kind}",
                    "use count, count_distinct or last on this column, or pick a numeric one",
                )
        where = agg.where_expression
        if where is not None:
            check_columns(where, schema.names, obj=view.title, field=f"{field}.where")


def _check_label(label: Label, schema: SourceSchema) -> None:
    _require_columns(label, "entities", label.join_keys, schema)
    for field in ("prediction_where", "outcome_where"):
        expr = parse_expression(getattr(label, field), obj=label.title, field=field)
        check_columns(expr, schema.names, obj=label.title, field=field)


def _check_model(model: Model, defs: Definitions) -> None:
    for view in model.feature_views:
        if defs.feature_views.get(view.name) is not view and defs.feature_views.get(view.name) != view:
            raise model.fail(
                "features",
                f"feature view {view.name!r} is not defined at module level in the project",
                "define it in one of the project's .py files",
            )
    computed = set(model.feature_names) - {f.name for f in model.on_demand}
    label_schema = defs.schemas[model.label.source.name]
    for feature in model.on_demand:
        clash = sorted(set(feature.request) & computed)
        if clash:
            raise feature.fail("request", f"field {clash[0]!r} is also a feature name", "rename the field")
        unknown = sorted(feature.feature_inputs - computed)
        if unknown:
            raise feature.fail(
                "expression",
                f"reads {', '.join(unknown)}, which model {model.name!r} does not compute",
                "name request fields in request= or add the feature's view to the model "
                f"(available: {', '.join(sorted(computed))})",
            )
        missing = sorted(set(feature.request) - label_schema.names)
        if missing:
            raise feature.fail(
                "request",
                f"request field {missing[0]!r} is not a column of source {model.label.source.name!r}, "
                "so training sets cannot fill it from the prediction-point events",
                "use a column of the label's source as request field",
            )
