"""Feature reads over HTTP: ``GET /features/{name}`` and ``POST /features``.

Both answer what :func:`rtml.features.get_online_features` returns, as
``{"at": "<ISO time>", "rows": [{"<view>__<feature>": value, ..., "_missing": [views]}]}``.
Errors: 404 unknown view or model, 400 a missing or ill-typed join key or request field
(the message names it), 409 state built by another definition (run ``rtml backfill``),
422 ``at`` before what the store covers, 503 the online store is down (``Retry-After``).
Floats that JSON cannot carry (NaN, infinity) are sent as ``null``. See docs/online-store.md.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema
from starlette.concurrency import run_in_threadpool

from rtml.errors import InvalidInputError
from rtml.features import MISSING, NotFoundError, OnlineFeatures, at_iso, at_millis
from rtml.services.server.errors import ErrorBody
from rtml.timeutil import from_millis

MAX_ENTITIES = 10_000
_EXAMPLE_ROW: dict[str, Any] = {
    "user_activity__views_1h": 3,
    "user_activity__viewed_price_7d": 41.5,
    MISSING: [],
}


class FeaturesQuery(BaseModel):
    """What to read: a model (its features, on-demand ones included) or feature views."""

    model_config = ConfigDict(
        extra="forbid",
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {"views": ["user_activity"], "entities": [{"user_id": 42}]},
                {
                    "model": "purchase_1h",
                    "entities": [{"user_id": 42, "product_id": 1001, "price": 12.5}],
                    "at": "2019-10-15T12:00:00Z",
                },
            ],
            # Exactly one of the two (checked in the handler; said here for clients and fuzzers).
            "oneOf": [
                {"required": ["model"], "not": {"required": ["views"]}},
                {"required": ["views"], "not": {"required": ["model"]}},
            ],
        },
    )

    # Optional, but never null: the schema says string / array, and a null is refused.
    model: str | SkipJsonSchema[None] = Field(
        default=None, description="A model's name (give `model` or `views`)."
    )
    views: list[str] | SkipJsonSchema[None] = Field(
        default=None, description="Feature view names (give `model` or `views`)."
    )
    entities: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_ENTITIES,
        description="One object per row: the join keys, and a model's request fields.",
    )
    at: str | SkipJsonSchema[None] = Field(
        default=None, description="ISO-8601 time with a zone; default now."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in ("model", "views", "at"):
                if name in data and data[name] is None:
                    raise ValueError(f"{name} is null: leave it out or give a value")
        return data


class FeaturesReply(BaseModel):
    """Feature values per entity row, in the order of the request."""

    at: str = Field(description="The time the values are as of (events strictly before it count).")
    rows: list[dict[str, Any]] = Field(
        description="Per row: every feature by qualified name, on-demand features, and `_missing`: "
        "the views whose state the store does not hold for the row's key (their features "
        "read as the defaults: count/sum/count_distinct 0, others null)."
    )

    model_config = {
        "json_schema_extra": {"examples": [{"at": "2019-10-15T12:00:00.000Z", "rows": [_EXAMPLE_ROW]}]}
    }


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A join key or request field is missing or ill-typed"},
    404: {"model": ErrorBody, "description": "No such feature view or model"},
    409: {
        "model": ErrorBody,
        "description": "Stored state was built by another definition: run `rtml backfill`",
    },
    422: {
        "model": ErrorBody,
        "description": "`at` is before what the store covers, or the body is not valid",
    },
    503: {"model": ErrorBody, "description": "The online store is down; retry after `Retry-After` seconds"},
}


def build_router(reader: OnlineFeatures) -> APIRouter:
    router = APIRouter(tags=["features"])

    def read(target: Any, entities: list[dict[str, Any]], at: str | None) -> FeaturesReply:
        t_ms = at_millis(at)
        rows = reader.get(target, entities, at=from_millis(t_ms))
        return FeaturesReply(at=at_iso(t_ms), rows=[_json_safe(r) for r in rows])

    @router.get(
        "/features/{name}",
        response_model=FeaturesReply,
        summary="Features of one entity",
        responses=_ERRORS,
    )
    def get_features(
        request: Request,
        name: str = Path(description="A feature view (or a model) of the project."),
    ) -> FeaturesReply:
        """The features of one entity, keys as query parameters, e.g.
        `GET /features/user_activity?user_id=42&at=2019-10-15T12:00:00Z`. For a model,
        also its request fields (`?user_id=42&product_id=7&price=12.5`)."""
        params = dict(request.query_params)
        at = params.pop("at", None)
        plan = reader.plan(name)
        known = {k for v in plan.views for k, _ in v.keys} | {f for f, _ in plan.request}
        unknown = sorted(set(params) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown query parameter {unknown[0]!r}. Fix: give the join keys "
                f"({', '.join(sorted(known))}) and optionally at=<ISO time>"
            )
        return read(name, [params], at)

    @router.post(
        "/features",
        response_model=FeaturesReply,
        summary="Features of many entities",
        responses=_ERRORS,
    )
    async def post_features(query: FeaturesQuery) -> FeaturesReply:
        """The features of a model or of feature views for each entity of `entities`,
        all read with one store call per view."""
        if (query.model is None) == (query.views is None):
            raise InvalidInputError('give exactly one of "model" and "views"')
        if query.model is not None and query.model not in reader.project.definitions.models:
            raise NotFoundError(
                f"no model named {query.model!r}. Fix: use one of "
                f"{', '.join(sorted(reader.project.definitions.models)) or 'none'}, or read views"
            )
        target: Any = query.model if query.model is not None else query.views
        return await run_in_threadpool(read, target, query.entities, query.at)

    return router


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
