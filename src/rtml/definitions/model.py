"""``Model``: features + label + XGBoost parameters + the search space to tune."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from rtml.definitions.base import Definition, as_tuple
from rtml.definitions.feature_view import FeatureRef, FeatureView
from rtml.definitions.label import Label
from rtml.definitions.on_demand import OnDemandFeature

Metric = Literal["roc_auc", "pr_auc", "log_loss"]
METRICS: tuple[str, ...] = ("roc_auc", "pr_auc", "log_loss")


@dataclasses.dataclass(frozen=True, kw_only=True)
class IntParam:
    low: int
    high: int
    log: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class FloatParam:
    low: float
    high: float
    log: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class Choice:
    values: tuple[Any, ...]


SearchParam = IntParam | FloatParam | Choice
ModelFeature = FeatureView | FeatureRef | OnDemandFeature


@dataclasses.dataclass(frozen=True, kw_only=True)
class Model(Definition):
    """A binary classifier trained on point-in-time features.

    ``features`` lists whole feature views, single features (``view["views_1h"]``) and
    on-demand features. ``params`` are fixed XGBoost parameters; ``search_space`` maps
    parameter names to ``IntParam``/``FloatParam``/``Choice`` for tuning.
    """

    kind: ClassVar[str] = "Model"

    features: Sequence[ModelFeature]
    label: Label
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    search_space: dict[str, SearchParam] = dataclasses.field(default_factory=dict)
    metric: Metric = "roc_auc"

    def _validate(self) -> None:
        object.__setattr__(self, "features", as_tuple(self.features))
        if not isinstance(self.label, Label):
            raise self.fail("label", f"expected a Label, got {self.label!r}", "pass the Label object")
        if not self.features:
            raise self.fail("features", "lists no features", "e.g. features=[user_activity]")
        for item in self.features:
            if not isinstance(item, FeatureView | FeatureRef | OnDemandFeature):
                raise self.fail(
                    "features",
                    f"{item!r} is not a feature",
                    "list FeatureView objects, view['feature'] references or OnDemandFeature objects",
                )
        if self.metric not in METRICS:
            raise self.fail("metric", f"unknown metric {self.metric!r}", f"use one of {', '.join(METRICS)}")
        for key, param in self.search_space.items():
            self._check_param(key, param)
        names = self.feature_names
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise self.fail("features", f"lists {', '.join(duplicates)} twice", "list each feature once")
        self._check_keys()

    def _check_param(self, key: str, param: object) -> None:
        if isinstance(param, Choice):
            if not param.values:
                raise self.fail("search_space", f"{key!r} has an empty Choice", "give Choice(values=(...))")
            return
        if not isinstance(param, IntParam | FloatParam):
            raise self.fail(
                "search_space",
                f"{key!r} maps to {param!r}",
                "use IntParam(low=, high=), FloatParam(low=, high=, log=) or Choice(values=)",
            )
        if not param.low < param.high:
            raise self.fail("search_space", f"{key!r} has low >= high", "make low < high")
        if param.log and param.low <= 0:
            raise self.fail("search_space", f"{key!r} is log-scaled with low <= 0", "make low > 0")

    def _check_keys(self) -> None:
        """Every feature view's join keys must be provided by the label's prediction points."""
        available = set(self.label.join_keys)
        for view in self.feature_views:
            missing = [k for k in view.join_keys if k not in available]
            if missing:
                raise self.fail(
                    "features",
                    f"feature view {view.name!r} is keyed by {', '.join(missing)}, "
                    f"which label {self.label.name!r} does not provide",
                    f"add the entity with key {missing[0]!r} to the label's entities, or drop the view",
                )

    @property
    def feature_views(self) -> tuple[FeatureView, ...]:
        views: dict[str, FeatureView] = {}
        for item in self.features:
            view = item if isinstance(item, FeatureView) else getattr(item, "view", None)
            if isinstance(view, FeatureView):
                views.setdefault(view.name, view)
        return tuple(views.values())

    @property
    def on_demand(self) -> tuple[OnDemandFeature, ...]:
        return tuple(f for f in self.features if isinstance(f, OnDemandFeature))

    @property
    def feature_names(self) -> list[str]:
        """Qualified names of the model's inputs, in order: view features, then on-demand."""
        names: list[str] = []
        for item in self.features:
            if isinstance(item, FeatureView):
                names.extend(f.qualified_name for f in item.features)
            elif isinstance(item, FeatureRef):
                names.append(item.qualified_name)
        names.extend(f.name for f in self.on_demand)
        return names

    @property
    def request_fields(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        for feature in self.on_demand:
            fields.update(feature.request)
        return fields
