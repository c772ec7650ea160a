"""``create_app(project)``: the one ASGI app of rtml's server.

One router per concern, each built from the project and kept in its own module:

- :mod:`.ingest` -- ``POST /events``;
- :mod:`.health` -- ``/health``, ``/metrics``;
- :mod:`.features` -- ``GET /features/{name}``, ``POST /features`` (online feature reads);
- :mod:`.predict` -- ``POST /predict/{model}``, ``POST /predict/{model}/batch``, ``/ready``
  (the work itself is :class:`.scoring.ScoringService`'s: framework-free).

Shared here, once: the error handler (each :class:`~rtml.errors.RtmlError` answers its
``http_status`` as ``{"error", "message"}``), the Prometheus metrics and the JSON access
log. State a router needs lives on ``app.state`` and is closed with the app.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

import rtml
from rtml.backends.online_store import OnlineStore
from rtml.backends.prediction_log import PredictionLog
from rtml.core.validation import Validator
from rtml.features import OnlineFeatures
from rtml.project import Project
from rtml.services.logging import service_logger
from rtml.services.server import features, health, ingest, predict, ui
from rtml.services.server.errors import install_error_handlers
from rtml.services.server.models import RegistryLike
from rtml.services.server.observability import AccessLog, ServerMetrics
from rtml.services.server.raw_sink import RawEventSink
from rtml.services.server.serving import build_scoring
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
    online_store: OnlineStore | None = None,
    registry: RegistryLike | None = None,
    prediction_log: PredictionLog | None = None,
) -> FastAPI:
    """The server app of ``project``. ``settings`` default to ``server`` in rtml.yaml;
    ``validator``, ``sink``, ``online_store``, the model ``registry`` and the
    ``prediction_log`` default to the project's (tests pass their own)."""
    settings = settings or project.config.server
    log = logger or service_logger(LOGGER)
    metrics = ServerMetrics()
    validator = validator or build_validator(project, project.config.validator)
    sink = sink or RawEventSink(project, settings.ingest)
    # Opens the project's online store on the first read unless one is given.
    feature_reader = OnlineFeatures(project, online_store)
    scoring = build_scoring(
        project,
        settings.predict,
        feature_reader,
        metrics.registry,
        log,
        registry=registry,
        prediction_log=prediction_log,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # What the imports and the app built (~400k objects) is never garbage: freezing it keeps
        # the collector from walking it on every full collection (~25 ms each, about one per
        # 1,000-row batch or ~150 single predictions). Unfrozen at shutdown.
        gc.collect()
        gc.freeze()
        scoring.holder.start()
        if scoring.log is not None:
            scoring.log.start()
        try:
            yield
        finally:
            scoring.holder.close()
            if scoring.log is not None:
                scoring.log.close()
            sink.close()
            feature_reader.close()
            gc.unfreeze()

    app = FastAPI(
        title=f"rtml server: {project.config.project}",
        version=rtml.__version__,
        description="Event ingestion, feature reads, predictions, health and metrics of an rtml project. "
        "See docs/ingestion.md, docs/online-store.md and docs/serving.md.",
        lifespan=lifespan,
    )
    app.state.project = project
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.scoring = scoring
    app.state.ingestion = ingest.Ingestion(
        validator=validator, sink=sink, settings=settings.ingest, metrics=metrics
    )

    app.include_router(ingest.build_router(_event_schema(project)))
    app.include_router(health.build_router(project.config.project, rtml.__version__))
    app.include_router(features.build_router(feature_reader))
    app.include_router(predict.build_router(scoring))
    app.include_router(ui.build_router(project))

    install_error_handlers(app, log, retry_after_s=settings.ingest.retry_after_s)
    # Inside the access log (added last: outermost), so that its requests are logged and counted.
    app.add_middleware(predict.PredictFastPath, service=scoring, logger=log)
    app.add_middleware(AccessLog, metrics=metrics, logger=log, lines=settings.access_log)
    return app


def _event_schema(project: Project) -> dict[str, Any]:
    """The JSON Schema of the events ``POST /events`` takes, for the OpenAPI document."""
    source = project_source(project, project.config.validator)
    return ingest.openapi_event_schema(project.definitions.schemas[source.name].document)
