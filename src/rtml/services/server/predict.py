"""``POST /predict/{model}``, ``POST /predict/{model}/batch`` and ``GET /ready``.

The body is read and checked by hand (not by FastAPI's models), so that HTTP and a Ray
Serve deployment share one validation path (:class:`~rtml.core.predict.Predictor`); the
OpenAPI document still describes each model's rows exactly (keys typed by the source
schema, request fields by the on-demand features). Errors: 400 malformed JSON, a
missing/null/ill-typed/unknown field (the message names it); 404 unknown model; 413 body
or batch too large; 409 online state built by another definition; 422 ``at`` not
covered; 503 model not loaded, online store down, overloaded -- each with
``Retry-After``. See docs/serving.md.

The hot path: :class:`PredictFastPath`, an ASGI middleware in front of the routes, answers
``POST /predict/{model}`` and ``/batch`` itself -- same checks, same answers, same errors --
without FastAPI's routing, parameter and response machinery (10-15% of a single row's
CPU); a request it does not recognise (odd query parameters) goes on to the routes,
which stay the reference and the OpenAPI document. Each request runs in a thread pool of
``max_in_flight`` threads (a plain ``ThreadPoolExecutor``: cheaper than Starlette's
``run_in_threadpool``), so that a store that is stuck holds one thread, not the event loop,
and ``max_in_flight`` keeps answering 503 at once. Single rows are scored on the event loop
itself (``inline_single_rows``, on by default): no thread hand-over, about a quarter less CPU
per request. An inline call slower than ``inline_slow_ms``, or one the online store fails,
pauses that for ``inline_pause_s``: single rows then go to the threads as batches do, so a
stuck store stalls the event loop once per pause, for at most the store's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from rtml.core.predict import RequestSpec
from rtml.errors import BackendUnavailableError, InvalidInputError, RtmlError
from rtml.services.logging import log_event
from rtml.services.server.errors import ErrorBody, PayloadTooLargeError, error_code, error_response
from rtml.services.server.scoring import ScoredBatch, ScoringService

_DECODE = msgspec.json.Decoder()


def _encode_other(value: Any) -> Any:
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


_ENCODE = msgspec.json.Encoder(enc_hook=_encode_other)  # NaN and infinities are written as null
_JSON_HEADERS = [(b"content-type", b"application/json")]
# What FastAPI (pydantic) takes for a bool query parameter.
_BOOLS = {"0": False, "off": False, "f": False, "false": False, "n": False, "no": False,
          "1": True, "on": True, "t": True, "true": True, "y": True, "yes": True}  # fmt: skip


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
            row = _single_row(await _read_json(request, settings.max_body_bytes), model)
            batch = await run(request, model, [row], at, single=True)
        except RtmlError as exc:
            return _error(exc, settings.retry_after_s)
        return _json(single_body(batch, features))

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
        return _json(batch_body(batch, features))

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


def single_body(batch: ScoredBatch, features: bool) -> dict[str, Any]:
    """The answer of ``POST /predict/{model}``."""
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
    return body


def batch_body(batch: ScoredBatch, features: bool) -> dict[str, Any]:
    """The answer of ``POST /predict/{model}/batch``."""
    if features:
        predictions = [
            {
                "request_id": s.request_id,
                "score": _finite(s.score),
                "missing": s.missing,
                "features": s.features,
            }
            for s in batch.rows
        ]
    else:
        predictions = [
            {"request_id": s.request_id, "score": _finite(s.score), "missing": s.missing} for s in batch.rows
        ]
    return {
        "model": batch.model,
        "version": batch.version,
        "store_down": batch.store_down,
        "predictions": predictions,
    }


class PredictFastPath:
    """ASGI middleware: ``POST /predict/{model}`` and ``/predict/{model}/batch`` answered
    directly (see the module's docstring); everything else goes on to ``app``.

    Sets ``scope["route"]`` to the route's template so that the access log and the
    metrics label the request as the routes would."""

    def __init__(self, app: ASGIApp, *, service: ScoringService, logger: logging.Logger) -> None:
        self.app = app
        self.service = service
        self.logger = logger
        self._single_route = SimpleNamespace(path="/predict/{model}")
        self._batch_route = SimpleNamespace(path="/predict/{model}/batch")
        settings = service.settings
        self._inline = settings.inline_single_rows
        self._slow_s = settings.inline_slow_ms / 1000
        self._threads_until = 0.0  # monotonic time until which single rows go to the threads
        self._executor = ThreadPoolExecutor(service.settings.max_in_flight, thread_name_prefix="rtml-predict")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/predict/"):
            await self.app(scope, receive, send)
            return
        parts = scope["path"][9:].split("/")
        batch = len(parts) == 2 and parts[1] == "batch"
        query = _query(scope.get("query_string", b""))
        if not parts[0] or (len(parts) != 1 and not batch) or query is None:
            await self.app(scope, receive, send)  # the routes answer (404, 422, ...)
            return
        model, (features, at) = parts[0], query
        scope["route"] = self._batch_route if batch else self._single_route
        settings = self.service.settings
        try:
            headers = _headers(scope)
            body = await _receive_json(receive, headers.get(b"content-length"), settings.max_body_bytes)
            request_id = headers.get(b"x-request-id")
            rid = request_id.decode("latin-1") if request_id is not None else None
            if batch:
                rows = _rows_of(body, settings.max_batch_rows)
                with self.service.admit():
                    scored = await self._run(model, rows, rid, at, single=False)
                answer = batch_body(scored, features)
            else:
                row = _single_row(body, model)
                with self.service.admit():
                    if self._inline and time.monotonic() >= self._threads_until:
                        scored = self._run_inline(model, row, rid, at)
                    else:
                        scored = await self._run(model, [row], rid, at, single=True)
                answer = single_body(scored, features)
        except RtmlError as exc:
            await _error(exc, settings.retry_after_s)(scope, receive, send)
            return
        except Exception as exc:
            log_event(self.logger, "unexpected_error", level=logging.ERROR, path=scope["path"], exc_info=exc)
            response = error_response(500, "internal", f"internal server error ({type(exc).__name__})")
            await response(scope, receive, send)
            return
        content = _ENCODE.encode(answer)
        await _send_json(send, content)

    def _run_inline(self, model: str, row: Any, rid: str | None, at: str | None) -> Any:
        """``service.predict`` of one row on the event loop; a slow call or a store failure
        sends single rows to the threads for ``inline_pause_s``."""
        started = time.monotonic()
        try:
            scored = self.service.predict(model, [row], request_id=rid, at=at, single=True)
        except BackendUnavailableError as exc:
            self._pause_inline(f"the online store failed: {exc}"[:300])
            raise
        took = time.monotonic() - started
        if took > self._slow_s:
            self._pause_inline(f"an inline call took {took * 1000:.0f} ms")
        return scored

    def _pause_inline(self, why: str) -> None:
        pause = self.service.settings.inline_pause_s
        self._threads_until = time.monotonic() + pause
        self.service.inline_paused.inc()
        log_event(self.logger, "inline_scoring_paused", level=logging.WARNING, reason=why, pause_s=pause)

    async def _run(
        self, model: str, rows: list[Any], rid: str | None, at: str | None, *, single: bool
    ) -> Any:
        """``service.predict`` in one of the predictor threads."""
        call = partial(self.service.predict, model, rows, request_id=rid, at=at, single=single)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)


async def _send_json(send: Send, content: bytes) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def _query(raw: bytes) -> tuple[bool, str | None] | None:
    """``(features, at)`` of a query string the fast path takes, else None."""
    if not raw:
        return False, None
    features, at = False, None
    seen = set()
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            return None
        seen.add(name)
        if name == "features":
            flag = _BOOLS.get(value.lower())
            if flag is None:
                return None
            features = flag
        elif name == "at":
            at = value
        else:
            return None
    return features, at


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k: v for k, v in scope["headers"] if k in _WANTED}  # ASGI names are lower case


_WANTED = frozenset((b"content-length", b"x-request-id"))


async def _receive_json(receive: Receive, declared: bytes | None, limit: int) -> Any:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidInputError("the client closed the connection before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return _decode(parts[0] if len(parts) == 1 else b"".join(parts))


def _single_row(row: Any, model: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise InvalidInputError(
            f"the body must be one JSON object of the row's fields, got {type(row).__name__}. "
            f'Fix: send an object, or POST /predict/{model}/batch with {{"rows": [...]}}'
        )
    return row


def _json(body: Any) -> Response:
    return Response(_ENCODE.encode(body), media_type="application/json")


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
    return _decode(b"".join(parts))


def _decode(body: bytes) -> Any:
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
