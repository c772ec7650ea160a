"""Errors -> HTTP answers, mapped once for the whole server.

Every :class:`~rtml.errors.RtmlError` carries its ``http_status``; the answer is
``{"error": "<code>", "message": "..."}`` where the code comes from the error's class
(``BackendUnavailableError`` -> ``backend_unavailable``). A 503 carries ``Retry-After``.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from rtml.errors import RtmlError
from rtml.services.logging import log_event

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


class PayloadTooLargeError(RtmlError):
    """A request body is over the server's limit."""

    http_status = 413


class ErrorBody(BaseModel):
    """What every error answer of the server holds."""

    error: str = Field(description="A stable code, e.g. `invalid_input`, `payload_too_large`.")
    message: str = Field(description="What was wrong and what to do about it.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "error": "backend_unavailable",
                    "message": "Kafka at 127.0.0.1:9092 is not reachable: ... Fix: start it",
                }
            ]
        }
    }


def error_code(exc: RtmlError) -> str:
    """``InvalidInputError`` -> ``invalid_input``; ``RtmlError`` -> ``internal``."""
    name = type(exc).__name__.removesuffix("Error")
    return _CAMEL.sub("_", name).lower() if name and name != "Rtml" else "internal"


def error_response(status: int, code: str, message: str, *, retry_after_s: int | None = None) -> Response:
    headers = {"Retry-After": str(retry_after_s)} if status == 503 and retry_after_s else None
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, logger: logging.Logger, *, retry_after_s: int) -> None:
    """Answer every error of ``app`` as an :class:`ErrorBody`."""

    @app.exception_handler(RtmlError)
    async def rtml_error(request: Request, exc: RtmlError) -> Response:
        status = int(getattr(exc, "http_status", 500))
        if status >= 500:
            log_event(logger, "request_failed", level=logging.WARNING, path=request.url.path, error=str(exc))
        return error_response(status, error_code(exc), str(exc), retry_after_s=retry_after_s)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return error_response(422, "invalid_request", f"the request is not valid: {problems}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log_event(logger, "unexpected_error", level=logging.ERROR, path=request.url.path, exc_info=exc)
        return error_response(500, "internal", f"internal server error ({type(exc).__name__})")
