"""The ASGI app of rtml's schema registry: Confluent Schema Registry's REST API.

Bodies are read as JSON whatever their content type (clients send
``application/vnd.schemaregistry.v1+json``), answers carry that content type, and
errors are ``{"error_code": ..., "message": ...}`` with Confluent's codes. Also
``/health``, ``/metrics`` (Prometheus) and one JSON log line per request.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from rtml.backends.schema_store.base import SchemaStore, SchemaStoreError, StoredSchema
from rtml.core.compatibility import SCHEMA_TYPES
from rtml.errors import BackendUnavailableError, RtmlError
from rtml.services.logging import log_event, service_logger
from rtml.services.registry import errors
from rtml.services.registry.models import ConfigRequest, SchemaRequest, parse_body
from rtml.services.registry.registry import Registered, SchemaRegistry

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryResponse(JSONResponse):
    media_type = MEDIA_TYPE


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.BadRequest(f"The request body is not valid JSON: {exc}") from None


def _schema_fields(stored: StoredSchema) -> dict[str, Any]:
    fields: dict[str, Any] = {"schema": stored.text}
    if stored.schema_type != "AVRO":  # Confluent leaves out the default type
        fields["schemaType"] = stored.schema_type
    return fields


def _version_body(found: Registered) -> dict[str, Any]:
    return {
        "subject": found.subject,
        "version": found.version,
        "id": found.schema.id,
        **_schema_fields(found.schema),
    }


def _schema_id(text: str) -> int:
    if not text.isdigit():
        raise errors.SchemaNotFound(f"Schema {text} not found")
    return int(text)


def _page(items: list[Any], offset: int, limit: int) -> list[Any]:
    start = max(offset, 0)
    return items[start:] if limit < 0 else items[start : start + limit]


def build_router(registry: SchemaRegistry) -> APIRouter:
    r = APIRouter(default_response_class=RegistryResponse)

    @r.get("/")
    def root() -> dict[str, Any]:
        return {}

    @r.get("/schemas/types")
    def schema_types() -> list[str]:
        return list(SCHEMA_TYPES)

    @r.get("/schemas/ids/{schema_id}")
    def schema_by_id(schema_id: str) -> dict[str, Any]:
        return _schema_fields(registry.schema_by_id(_schema_id(schema_id)))

    @r.get("/schemas/ids/{schema_id}/schema")
    def raw_schema_by_id(schema_id: str) -> Response:
        text = registry.schema_by_id(_schema_id(schema_id)).text
        return Response(text, media_type=MEDIA_TYPE)

    @r.get("/schemas/ids/{schema_id}/versions")
    def versions_of_id(schema_id: str, deleted: bool = False) -> list[dict[str, Any]]:
        uses = registry.uses_of(_schema_id(schema_id), deleted=deleted)
        return [{"subject": u.subject, "version": u.version} for u in uses]

    @r.get("/schemas/ids/{schema_id}/subjects")
    def subjects_of_id(schema_id: str, deleted: bool = False) -> list[str]:
        return sorted({u.subject for u in registry.uses_of(_schema_id(schema_id), deleted=deleted)})

    @r.get("/subjects")
    def subjects(
        deleted: bool = False,
        deleted_only: bool = False,
        subjectPrefix: str = "",  # noqa: N803 - Confluent's parameter name
        offset: int = 0,
        limit: int = -1,
    ) -> list[str]:
        found = registry.subjects(deleted=deleted, deleted_only=deleted_only, prefix=subjectPrefix)
        return _page(found, offset, limit)

    @r.get("/subjects/{subject}/versions")
    def versions(
        subject: str, deleted: bool = False, deleted_only: bool = False, offset: int = 0, limit: int = -1
    ) -> list[int]:
        return _page(registry.versions(subject, deleted=deleted, deleted_only=deleted_only), offset, limit)

    @r.post("/subjects/{subject}/versions")
    def register(subject: str, normalize: bool = False, body: Any = Depends(json_body)) -> dict[str, Any]:
        request = parse_body(SchemaRequest, body, errors.InvalidSchema)
        request.check_supported()
        found = registry.register(subject, request.schema_type, request.schema_text, normalize=normalize)
        return {"id": found.schema.id, "version": found.version}

    @r.get("/subjects/{subject}/versions/{version}")
    def version(subject: str, version: str, deleted: bool = False) -> dict[str, Any]:
        return _version_body(registry.version(subject, version, deleted=deleted))

    @r.get("/subjects/{subject}/versions/{version}/schema")
    def raw_version(subject: str, version: str, deleted: bool = False) -> Response:
        text = registry.version(subject, version, deleted=deleted).schema.text
        return Response(text, media_type=MEDIA_TYPE)

    @r.get("/subjects/{subject}/versions/{version}/referencedby")
    def referenced_by(subject: str, version: str) -> list[int]:
        registry.version(subject, version)
        return []  # references are not supported, so nothing refers to a version

    @r.delete("/subjects/{subject}/versions/{version}")
    def delete_version(subject: str, version: str, permanent: bool = False) -> int:
        return registry.delete_version(subject, version, permanent=permanent)

    @r.post("/subjects/{subject}")
    def lookup(
        subject: str, normalize: bool = False, deleted: bool = False, body: Any = Depends(json_body)
    ) -> dict[str, Any]:
        request = parse_body(SchemaRequest, body, errors.InvalidSchema)
        request.check_supported()
        found = registry.lookup(
            subject, request.schema_type, request.schema_text, normalize=normalize, deleted=deleted
        )
        return _version_body(found)

    @r.delete("/subjects/{subject}")
    def delete_subject(subject: str, permanent: bool = False) -> list[int]:
        return registry.delete_subject(subject, permanent=permanent)

    @r.get("/config")
    def get_global_config() -> dict[str, Any]:
        return {"compatibilityLevel": registry.get_config(None).value}

    @r.put("/config")
    def put_global_config(body: Any = Depends(json_body)) -> dict[str, Any]:
        request = parse_body(ConfigRequest, body, errors.InvalidCompatibilityLevel)
        return {"compatibility": registry.set_config(None, request.level).value}

    @r.delete("/config")
    def delete_global_config() -> dict[str, Any]:
        return {"compatibilityLevel": registry.delete_config(None).value}

    @r.get("/config/{subject}")
    def get_config(subject: str, defaultToGlobal: bool = False) -> dict[str, Any]:  # noqa: N803
        level = registry.get_config(subject, default_to_global=defaultToGlobal)
        return {"compatibilityLevel": level.value}

    @r.put("/config/{subject}")
    def put_config(subject: str, body: Any = Depends(json_body)) -> dict[str, Any]:
        request = parse_body(ConfigRequest, body, errors.InvalidCompatibilityLevel)
        return {"compatibility": registry.set_config(subject, request.level).value}

    @r.delete("/config/{subject}")
    def delete_config(subject: str) -> dict[str, Any]:
        return {"compatibilityLevel": registry.delete_config(subject).value}

    def _compatibility(
        subject: str, version: str | None, normalize: bool, verbose: bool, body: Any
    ) -> dict[str, Any]:
        request = parse_body(SchemaRequest, body, errors.InvalidSchema)
        request.check_supported()
        problems = registry.test_compatibility(
            subject, version, request.schema_type, request.schema_text, normalize=normalize
        )
        answer: dict[str, Any] = {"is_compatible": not problems}
        if verbose:
            answer["messages"] = problems
        return answer

    @r.post("/compatibility/subjects/{subject}/versions/{version}")
    def compatibility(
        subject: str,
        version: str,
        normalize: bool = False,
        verbose: bool = False,
        body: Any = Depends(json_body),
    ) -> dict[str, Any]:
        return _compatibility(subject, version, normalize, verbose, body)

    @r.post("/compatibility/subjects/{subject}/versions")
    def compatibility_all(
        subject: str, normalize: bool = False, verbose: bool = False, body: Any = Depends(json_body)
    ) -> dict[str, Any]:
        return _compatibility(subject, None, normalize, verbose, body)

    @r.get("/mode")
    def mode() -> dict[str, str]:
        return {"mode": "READWRITE"}

    @r.get("/mode/{subject}")
    def subject_mode(subject: str) -> dict[str, str]:
        return {"mode": "READWRITE"}

    return r


def _error_body(status: int, code: int, message: str) -> RegistryResponse:
    return RegistryResponse({"error_code": code, "message": message}, status_code=status)


def create_app(store: SchemaStore, *, logger: logging.Logger | None = None) -> FastAPI:
    """The registry app over ``store`` (the caller owns and closes the store)."""
    registry = SchemaRegistry(store)
    log = logger or service_logger("rtml.registry")
    metrics = CollectorRegistry()
    requests = Counter(
        "rtml_registry_requests",
        "Schema registry HTTP requests",
        ["route", "method", "status"],
        registry=metrics,
    )
    latency = Histogram(
        "rtml_registry_request_duration_seconds",
        "Schema registry request latency",
        ["route", "method"],
        registry=metrics,
    )
    app = FastAPI(title="rtml schema registry", default_response_class=RegistryResponse)
    app.state.registry = registry

    @app.get("/health")
    def health() -> Response:
        try:
            store.get_config(None)
        except RtmlError as exc:
            return RegistryResponse({"status": "unavailable", "store": str(exc)}, status_code=503)
        return RegistryResponse({"status": "ok"})

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    app.include_router(build_router(registry))

    @app.exception_handler(RtmlError)
    async def rtml_error(request: Request, exc: RtmlError) -> Response:
        if isinstance(exc, errors.RegistryError):
            status, code, message = exc.http_status, exc.error_code, exc.message
        elif isinstance(exc, BackendUnavailableError | SchemaStoreError):
            status, code, message = 500, 50001, f"Error in the backend data store: {exc}"
        else:
            status, code, message = exc.http_status, exc.http_status, str(exc)
        request.state.error_code = code
        return _error_body(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        request.state.error_code = exc.status_code
        return _error_body(exc.status_code, exc.status_code, f"HTTP {exc.status_code}: {exc.detail}")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        request.state.error_code = 422
        return _error_body(422, 422, f"Unprocessable request: {problems}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log_event(log, "unexpected_error", level=logging.ERROR, path=request.url.path, exc_info=exc)
        return _error_body(500, 500, f"Internal Server Error: {type(exc).__name__}")

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        elapsed = time.perf_counter() - start
        route = getattr(request.scope.get("route"), "path", "unmatched")
        requests.labels(route, request.method, str(response.status_code)).inc()
        latency.labels(route, request.method).observe(elapsed)
        fields: dict[str, Any] = {
            "method": request.method,
            "route": route,
            "path": request.url.path,
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 3),
        }
        code = getattr(request.state, "error_code", None)
        if code is not None:
            fields["error_code"] = code
        log_event(
            log,
            "http_request",
            level=logging.WARNING if response.status_code >= 500 else logging.INFO,
            **fields,
        )
        return response

    return app
