"""``create_app(project)``: the one ASGI app of rtml's server.

One router per concern, each built from the project and kept in its own module:

- :mod:`.ingest` -- ``POST /events``;
- :mod:`.health` -- ``/health``, ``/metrics``;
- :mod:`.features` -- ``GET /features/{name}``, ``POST /features`` (online feature reads);
- predictions (``POST /predict/{model}``) and ``/ready`` are added by
  their own modules below, at the marked place, the same way.

Shared here, once: the error handler (each :class:`~rtml.errors.RtmlError` answers its
``http_status`` as ``{"error", "message"}``), the Prometheus metrics and the JSON access
log. State a router needs lives on ``app.state`` and is closed with the app.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

import rtml
from rtml.core.validation import Validator
from rtml.features import OnlineFeatures
from rtml.project import Project
from rtml.services.logging import service_logger
from rtml.services.server import features, health, ingest
from rtml.services.server.errors import install_error_handlers
from rtml.services.server.observability import AccessLog, ServerMetrics
from rtml.services.server.raw_sink import RawEventSink
from rtml.services.server.settings import ServerSettings
from rtml.services.validator.factory import build_validator, project_source

LOGGER = "rtml.server"


def create_app(
    project: Project,
    *,
    settings: ServerSettings | None = None,
    validator: Validator | None = None,
    sink: RawEventSink | None = None,
    logger: logging.Logger | None = None,
) -> FastAPI:
    """The server app of ``project``. ``settings`` default to ``server`` in rtml.yaml;
    ``validator`` and ``sink`` default to the project's (tests pass their own)."""
    settings = settings or project.config.server
    log = logger or service_logger(LOGGER)
    metrics = ServerMetrics()
    validator = validator or build_validator(project, project.config.validator)
    sink = sink or RawEventSink(project, settings.ingest)
    feature_reader = OnlineFeatures(project)  # opens the online store on the first read

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            sink.close()
            feature_reader.close()

    app = FastAPI(
        title=f"rtml server: {project.config.project}",
        version=rtml.__version__,
        description="Event ingestion, health and metrics of an rtml project. See docs/ingestion.md.",
        lifespan=lifespan,
    )
    app.state.project = project
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.ingestion = ingest.Ingestion(
        validator=validator, sink=sink, settings=settings.ingest, metrics=metrics
    )

    app.include_router(ingest.build_router(_event_schema(project)))
    app.include_router(health.build_router(project.config.project, rtml.__version__))
    app.include_router(features.build_router(feature_reader))
    # Further routers go here, each from its own module: predict.build_router(...), and /ready.

    install_error_handlers(app, log, retry_after_s=settings.ingest.retry_after_s)
    app.add_middleware(AccessLog, metrics=metrics, logger=log)
    return app


def _event_schema(project: Project) -> dict[str, Any]:
    """The JSON Schema of the events ``POST /events`` takes, for the OpenAPI document."""
    source = project_source(project, project.config.validator)
    return ingest.openapi_event_schema(project.definitions.schemas[source.name].document)
