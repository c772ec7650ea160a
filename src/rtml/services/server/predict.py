"""``POST /predict/{model}``, ``POST /predict/{model}/batch`` and ``GET /ready``.

The body is read and checked by hand (not by FastAPI's models), so that HTTP and a Ray
Serve deployment share one validation path (:class:`~rtml.core.predict.Predictor`); the
OpenAPI document still describes each model's rows exactly (keys typed by the source
schema, request fields by the on-demand features). Errors: 400 malformed JSON, a
missing/null/ill-typed/unknown field (the message names it); 404 unknown model; 413 body
or batch too large; 409 online state built by another definition; 422 ``at`` not
covered; 503 model not loaded, online store down, overloaded -- each with
``Retry-After``. See docs/serving.md.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from rtml.core.predict import RequestSpec
from rtml.errors import InvalidInputError, RtmlError
from rtml.services.server.errors import ErrorBody, PayloadTooLargeError, error_code, error_response
from rtml.services.server.scoring import ScoredBatch, ScoringService

_DECODE = msgspec.json.Decoder()


class Prediction(BaseModel):
    """The score of one row."""

    request_id: str = Field(description="The row's id in the prediction log (X-Request-ID if sent).")
    model: str
    version: str = Field(description="The registered version that scored the row.")
    score: float | None = Field(description="Probability of the positive class.")
    missing: list[str] = Field(
        description="Views whose state the store does not hold for the row's keys (an unknown entity): "
        "their features were the documented defaults (count/sum/count_distinct 0, others null)."
    )
    store_down: bool = Field(
        description="True when the online store was down and every feature was a default "
        "(only with server.predict.features_default_on_store_down)."
    )
    features: dict[str, Any] | None = Field(
        default=None, description="With ?features=true: the model inputs as served, in the model's order."
    )


class RowPrediction(BaseModel):
    request_id: str
    score: float | None
    missing: list[str]
    features: dict[str, Any] | None = None


class BatchPrediction(BaseModel):
    """The scores of a batch, in the order of its rows; one version scored them all."""

    model: str
    version: str
    store_down: bool
    predictions: list[RowPrediction]


class Readiness(BaseModel):
    ready: bool
    online_store: dict[str, Any]
    models: dict[str, dict[str, Any]]


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": "Malformed JSON, or a missing, null, ill-typed or unknown field",
    },
    404: {"model": ErrorBody, "description": "No such model"},
    409: {"model": ErrorBody, "description": "Online state built by another definition: run `rtml backfill`"},
    413: {"model": ErrorBody, "description": "Body over server.predict.max_body_bytes, or too many rows"},
    422: {"model": ErrorBody, "description": "`at` is not a time, or before what the store covers"},
    503: {
        "model": ErrorBody,
        "description": "Model not loaded, online store down, or too many requests in flight; "
        "retry after `Retry-After` seconds",
    },
}


def build_router(service: ScoringService) -> APIRouter:
    router = APIRouter(tags=["predictions"])
    settings = service.settings
    specs = {name: service.holder.spec(name) for name in service.holder.models}
    names = sorted(specs)
    model_param = Path(description="The model's name.", json_schema_extra={"enum": names} if names else None)
    features_param = Query(False, description="Include the feature values served in the reply.")
    at_param = Query(
        None,
        description="ISO-8601 time with a zone to read the features as of (replays, tests); default now. "
        "A time before what the store holds exactly is refused with 422.",
        json_schema_extra={"format": "date-time"},
    )

    async def run(request: Request, model: str, rows: Any, at: str | None, single: bool) -> ScoredBatch:
        request_id = request.headers.get("x-request-id")
        with service.admit():
            return await run_in_threadpool(
                service.predict, model, rows, request_id=request_id, at=at, single=single
            )

    @router.post(
        "/predict/{model}",
        summary="Score one row",
        response_model=None,
        responses={200: {"model": Prediction}, **_ERRORS},
        openapi_extra={"requestBody": _body_doc(specs, batch=False)},
    )
    async def predict(
        request: Request, model: str = model_param, features: bool = features_param, at: str | None = at_param
    ) -> Response:
        """Read the model's features of the row's keys from the online store as of now,
        compute its on-demand features from the request fields, and score them with the
        version the champion alias points at."""
        try:
            row = await _read_json(request, settings.max_body_bytes)
            if not isinstance(row, dict):
                raise InvalidInputError(
                    f"the body must be one JSON object of the row's fields, got {type(row).__name__}. "
                    f'Fix: send an object, or POST /predict/{model}/batch with {{"rows": [...]}}'
                )
            batch = await run(request, model, [row], at, single=True)
        except RtmlError as exc:
            return _error(exc, settings.retry_after_s)
        scored = batch.rows[0]
        body: dict[str, Any] = {
            "request_id": scored.request_id,
            "model": batch.model,
            "version": batch.version,
            "score": _finite(scored.score),
            "missing": scored.missing,
            "store_down": batch.store_down,
        }
        if features:
            body["features"] = scored.features
        return JSONResponse(body)

    @router.post(
        "/predict/{model}/batch",
        summary="Score many rows",
        response_model=None,
        responses={200: {"model": BatchPrediction}, **_ERRORS},
        openapi_extra={"requestBody": _body_doc(specs, batch=True, max_rows=settings.max_batch_rows)},
    )
    async def predict_batch(
        request: Request, model: str = model_param, features: bool = features_param, at: str | None = at_param
    ) -> Response:
        """Score every row of `rows` with one store round trip and one model call; all
        rows are scored by the same version."""
        try:
            body = await _read_json(request, settings.max_body_bytes)
            rows = _rows_of(body, settings.max_batch_rows)
            batch = await run(request, model, rows, at, single=False)
        except RtmlError as exc:
            return _error(exc, settings.retry_after_s)
        predictions = []
        for scored in batch.rows:
            item: dict[str, Any] = {
                "request_id": scored.request_id,
                "score": _finite(scored.score),
                "missing": scored.missing,
            }
            if features:
                item["features"] = scored.features
            predictions.append(item)
        return JSONResponse(
            {
                "model": batch.model,
                "version": batch.version,
                "store_down": batch.store_down,
                "predictions": predictions,
            }
        )

    @router.get(
        "/ready",
        summary="Readiness",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready: the body says what is missing"}},
        tags=["operations"],
    )
    async def ready() -> Response:
        """Ready when the online store answers and every model has its champion loaded."""
        report = await run_in_threadpool(service.ready)
        headers = None if report["ready"] else {"Retry-After": str(settings.retry_after_s)}
        return JSONResponse(report, status_code=200 if report["ready"] else 503, headers=headers)

    return router


async def _read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    body = b"".join(parts)
    if not body.strip():
        raise InvalidInputError("the body is empty. Fix: send a JSON object")
    try:
        return _DECODE.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidInputError(f"the body is not valid JSON ({exc}). Fix: send a JSON object") from None


def _rows_of(body: Any, max_rows: int) -> list[Any]:
    if not isinstance(body, dict) or "rows" not in body:
        raise InvalidInputError(
            'the body must be a JSON object {"rows": [...]}. Fix: wrap the rows in "rows"'
        )
    extra = sorted(k for k in body if k != "rows")
    if extra:
        raise InvalidInputError(f'{extra[0]}: unknown field of the batch body; it takes only "rows"')
    rows = body["rows"]
    if not isinstance(rows, list):
        raise InvalidInputError(f"rows: must be a list of objects, got {type(rows).__name__}")
    if not rows:
        raise InvalidInputError("rows: is empty. Fix: send at least one row")
    if len(rows) > max_rows:
        raise PayloadTooLargeError(
            f"rows: {len(rows):,} rows; the limit is {max_rows:,} (server.predict.max_batch_rows). "
            "Fix: split the batch"
        )
    return rows


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the body is over {limit:,} bytes (server.predict.max_body_bytes). Fix: send fewer rows per request"
    )


def _error(exc: RtmlError, retry_after_s: int) -> Response:
    status = int(getattr(exc, "http_status", 500))
    return error_response(status, error_code(exc), str(exc), retry_after_s=retry_after_s)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _body_doc(specs: dict[str, RequestSpec], *, batch: bool, max_rows: int = 0) -> dict[str, Any]:
    """The OpenAPI ``requestBody``: one model's row schema (any of them, if several)."""
    rows = [spec.json_schema() for spec in specs.values()]
    row: dict[str, Any] = rows[0] if len(rows) == 1 else {"anyOf": rows} if rows else {"type": "object"}
    schema = (
        {
            "type": "object",
            "required": ["rows"],
            "properties": {"rows": {"type": "array", "items": row, "minItems": 1, "maxItems": max_rows}},
            "additionalProperties": False,
        }
        if batch
        else row
    )
    examples = {name: _example(spec) for name, spec in specs.items()}
    example = next(iter(examples.values()), {})
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": schema,
                "example": {"rows": [example, example]} if batch else example,
            }
        },
    }


def _example(spec: RequestSpec) -> dict[str, Any]:
    samples = {"integer": 42, "number": 12.5, "string": "a", "boolean": True}
    out: dict[str, Any] = {name: samples.get(kind, "a") for name, kind in spec.keys}
    out.update({name: samples.get(kind, None) for name, kind in spec.request})
    return out
