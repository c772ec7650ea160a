"""``Label``: what a model predicts, computed from later events.

Prediction points are the source's events matching ``prediction_where``; the label of
a point at time ``t`` is 1 if an event with the same join keys matching
``outcome_where`` has event time in ``(t, t + horizon]``, else 0. A label is known only
once its horizon has passed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar

from rtml.definitions.base import Definition, as_tuple, duration_field
from rtml.definitions.entity import Entity
from rtml.definitions.source import Source
from rtml.definitions.sql import parse_expression


@dataclasses.dataclass(frozen=True, kw_only=True)
class Label(Definition):
    """E.g. "this user buys this product within 1 h of a cart event"."""

    kind: ClassVar[str] = "Label"

    source: Source
    entities: Sequence[Entity]
    prediction_where: str
    outcome_where: str
    horizon: str

    def _validate(self) -> None:
        object.__setattr__(self, "entities", as_tuple(self.entities))
        if not isinstance(self.source, Source):
            raise self.fail("source", f"expected a Source, got {self.source!r}", "pass the Source object")
        if not self.entities or not all(isinstance(e, Entity) for e in self.entities):
            raise self.fail("entities", "needs one or more Entity objects", "e.g. entities=[user, product]")
        parse_expression(self.prediction_where, obj=self.title, field="prediction_where")
        parse_expression(self.outcome_where, obj=self.title, field="outcome_where")
        duration_field(self, "horizon", self.horizon)

    @property
    def join_keys(self) -> tuple[str, ...]:
        return tuple(k for e in self.entities for k in e.join_keys)

    @property
    def horizon_span(self) -> timedelta:
        return duration_field(self, "horizon", self.horizon)
