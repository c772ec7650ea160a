"""``Aggregation`` and ``FeatureView``: windowed features of an entity over a source.

A window of length ``w`` with hop ``h`` read at time ``t`` covers
``[floor(t - w, h), t)``: exact at the head (every event strictly before ``t``),
hop-aligned at the tail. Each (aggregation, window) pair is one feature, named
``<aggregation name>_<window>`` (``views_1h``) and, across views,
``<view>__<feature>`` (``user_activity__views_1h``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar, Literal, get_args

from rtml.definitions.base import (
    Definition,
    as_tuple,
    caller_origin,
    check_name,
    duration_field,
)
from rtml.definitions.entity import Entity
from rtml.definitions.source import Source
from rtml.definitions.sql import SqlExpression, parse_expression
from rtml.errors import DefinitionError
from rtml.timeutil import format_duration

Function = Literal["count", "sum", "mean", "min", "max", "last", "count_distinct"]
FUNCTIONS: tuple[str, ...] = get_args(Function)
NEEDS_NUMERIC = frozenset({"sum", "mean", "min", "max"})


def default_hop(shortest_window: timedelta) -> timedelta:
    """The hop used when an aggregation names none: 1 minute for windows under a
    day, 1 hour from a day up. Tails are then at most that far from exact."""
    return timedelta(minutes=1) if shortest_window < timedelta(days=1) else timedelta(hours=1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Aggregation:
    """One aggregation over several windows, e.g.
    ``Aggregation(function="count", windows=["1h", "1d"], where="event_type = 'view'", name="views")``.
    """

    function: Function
    column: str | None = None
    windows: Sequence[str] = ()
    hop: str | None = None
    where: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        try:
            self._validate()
        except DefinitionError as err:
            raise err.with_origin(caller_origin()) from None

    def _validate(self) -> None:
        obj = f"Aggregation {self.name or self.function!r}"
        if self.function not in FUNCTIONS:
            raise DefinitionError(
                f"unknown function {self.function!r}",
                obj=obj,
                field="function",
                fix=f"use one of {', '.join(FUNCTIONS)}",
            )
        if self.function != "count" and not self.column:
            raise DefinitionError(
                f"{self.function} needs a column",
                obj=obj,
                field="column",
                fix=f"e.g. Aggregation(function={self.function!r}, column='price', ...)",
            )
        if self.column is not None:
            check_name(self.column, field="column", obj=obj)
        if self.name is None:
            derived = self.function if self.column is None else f"{self.function}_{self.column}"
            object.__setattr__(self, "name", derived)
        check_name(self.name, field="name", obj=obj)
        windows = as_tuple(self.windows)
        object.__setattr__(self, "windows", windows)
        if not windows:
            raise DefinitionError(
                "needs at least one window",
                obj=obj,
                field="windows",
                fix="e.g. windows=['1h', '1d']",
            )
        spans = [duration_field(obj, "windows", w) for w in windows]
        if len(set(spans)) != len(spans):
            raise DefinitionError(
                f"repeats a window in {list(windows)}",
                obj=obj,
                field="windows",
                fix="list each once",
            )
        hop = duration_field(obj, "hop", self.hop) if self.hop is not None else default_hop(min(spans))
        for window, span in zip(windows, spans, strict=True):
            if span < hop:
                raise DefinitionError(
                    f"window {window!r} is shorter than the hop {format_duration(hop)!r}",
                    obj=obj,
                    field="windows",
                    fix="make the hop at most the shortest window (e.g. hop='1m')",
                )
        if self.where is not None:
            parse_expression(self.where, obj=obj, field="where")

    @property
    def window_spans(self) -> tuple[timedelta, ...]:
        return tuple(duration_field("Aggregation", "windows", w) for w in self.windows)

    @property
    def hop_span(self) -> timedelta:
        if self.hop is None:
            return default_hop(min(self.window_spans))
        return duration_field("Aggregation", "hop", self.hop)

    @property
    def where_expression(self) -> SqlExpression | None:
        if self.where is None:
            return None
        return parse_expression(self.where, obj=f"Aggregation {self.name!r}", field="where")


@dataclasses.dataclass(frozen=True)
class Feature:
    """One output column of a feature view: an aggregation over one window."""

    view: str
    name: str
    aggregation: Aggregation
    window: timedelta

    @property
    def qualified_name(self) -> str:
        return f"{self.view}__{self.name}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class FeatureView(Definition):
    """Windowed aggregations of one source, keyed by one or more entities."""

    kind: ClassVar[str] = "FeatureView"

    entities: Sequence[Entity]
    source: Source
    aggregations: Sequence[Aggregation]
    online: bool = True

    def _validate(self) -> None:
        object.__setattr__(self, "entities", as_tuple(self.entities))
        object.__setattr__(self, "aggregations", as_tuple(self.aggregations))
        if not self.entities or not all(isinstance(e, Entity) for e in self.entities):
            raise self.fail("entities", "needs one or more Entity objects", "e.g. entities=[user]")
        if not isinstance(self.source, Source):
            raise self.fail("source", f"expected a Source, got {self.source!r}", "pass the Source object")
        if not self.aggregations or not all(isinstance(a, Aggregation) for a in self.aggregations):
            raise self.fail(
                "aggregations", "needs one or more Aggregation objects", "e.g. [Aggregation(...)]"
            )
        seen: set[str] = set()
        for feature in self.features:
            if feature.name in seen:
                raise self.fail(
                    "aggregations",
                    f"two aggregations give the feature {feature.name!r}",
                    "give one of them another name= ",
                )
            seen.add(feature.name)

    @property
    def join_keys(self) -> tuple[str, ...]:
        return tuple(k for e in self.entities for k in e.join_keys)

    @property
    def features(self) -> tuple[Feature, ...]:
        return tuple(
            Feature(
                view=self.name,
                name=f"{agg.name}_{format_duration(span)}",
                aggregation=agg,
                window=span,
            )
            for agg in self.aggregations
            for span in agg.window_spans
        )

    def __getitem__(self, feature: str) -> FeatureRef:
        """``view["views_1h"]``: a reference to one feature, for ``Model(features=[...])``."""
        names = [f.name for f in self.features]
        if feature not in names:
            raise self.fail("features", f"has no feature {feature!r}", f"use one of {', '.join(names)}")
        return FeatureRef(view=self, feature=feature)


@dataclasses.dataclass(frozen=True)
class FeatureRef:
    """One feature of a view, picked out for a model."""

    view: FeatureView
    feature: str

    @property
    def qualified_name(self) -> str:
        return f"{self.view.name}__{self.feature}"
