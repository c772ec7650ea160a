"""``OnDemandFeature``: a SQL expression computed at request time.

It reads request fields (sent with each prediction, e.g. ``price``) and the model's
other features by their qualified names (``product_stats__mean_price_7d``). In a
training set the request fields come from the prediction-point event.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from rtml.definitions.base import Definition, check_name
from rtml.definitions.sql import SqlExpression, parse_expression

RequestType = Literal["double", "bigint", "string", "boolean"]
REQUEST_TYPES: tuple[str, ...] = ("double", "bigint", "string", "boolean")


@dataclasses.dataclass(frozen=True, kw_only=True)
class OnDemandFeature(Definition):
    """E.g. ``OnDemandFeature(name="price_ratio", request={"price": "double"},
    expression="price / NULLIF(product_stats__price_7d, 0)")``."""

    kind: ClassVar[str] = "OnDemandFeature"

    expression: str
    request: dict[str, RequestType] = dataclasses.field(default_factory=dict)

    def _validate(self) -> None:
        if not isinstance(self.request, dict):
            raise self.fail("request", "must map field names to types", "e.g. {'price': 'double'}")
        for field_name, field_type in self.request.items():
            check_name(field_name, field="request", obj=self.title)
            if field_type not in REQUEST_TYPES:
                raise self.fail(
                    "request",
                    f"field {field_name!r} has unknown type {field_type!r}",
                    f"use one of {', '.join(REQUEST_TYPES)}",
                )
        parse_expression(self.expression, obj=self.title, field="expression")

    @property
    def parsed(self) -> SqlExpression:
        return parse_expression(self.expression, obj=self.title, field="expression")

    @property
    def feature_inputs(self) -> frozenset[str]:
        """Qualified feature names the expression reads (everything but request fields)."""
        return self.parsed.columns - set(self.request)
