"""Wiring of the prediction path from a project: model holder, scoring, prediction log.

Nothing here starts a thread or opens a connection: :class:`~.models.ModelHolder` opens
the model registry in its poller thread, :class:`~.prediction_log.PredictionLogger` its
backend at the first write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from rtml.backends.prediction_log import PredictionLog
from rtml.backends.prediction_log.factory import open_prediction_log, resolve_config
from rtml.backends.tracking.config import MLFLOW_DB
from rtml.core.predict import request_spec
from rtml.errors import BackendUnavailableError
from rtml.features import OnlineFeatures
from rtml.project import Project
from rtml.services.server.models import ModelHolder, RegistryLike
from rtml.services.server.prediction_log import PredictionLogger
from rtml.services.server.scoring import ScoringService
from rtml.services.server.settings import PredictSettings


def build_scoring(
    project: Project,
    settings: PredictSettings,
    reader: OnlineFeatures,
    metrics_registry: CollectorRegistry,
    logger: logging.Logger,
    *,
    registry: RegistryLike | None = None,
    prediction_log: PredictionLog | None = None,
) -> ScoringService:
    """The scoring service of ``project``: every model it defines, following the alias
    ``training.promotion.alias``; ``registry`` and ``prediction_log`` default to the
    project's (the registry of ``tracking``, the log of ``server.predict.log``)."""
    defs = project.definitions
    specs = {name: request_spec(model, defs.schemas) for name, model in defs.models.items()}
    opener: Callable[[], RegistryLike] = (
        (lambda: registry) if registry is not None else _registry_opener(project)
    )
    holder = ModelHolder(
        defs.models,
        specs,
        opener,
        alias=project.config.training.promotion.alias,
        poll_interval_s=settings.poll_interval_s,
        keep_versions=settings.keep_versions,
        nthread=settings.predict_threads,
        definitions_fingerprint=defs.fingerprint(),
        logger=logger,
        registry=metrics_registry,
    )
    log: PredictionLogger | None = None
    if settings.log.enabled:
        open_log: Callable[[], PredictionLog]
        if prediction_log is not None:
            given = prediction_log

            def open_log() -> PredictionLog:
                return given

        else:
            config = resolve_config(
                settings.log.backend, offline_store=project.config.offline_store, data_dir=project.data_dir
            )

            def open_log() -> PredictionLog:
                return open_prediction_log(config)

        log = PredictionLogger(open_log, settings.log, logger=logger, registry=metrics_registry)
    return ScoringService(holder, reader, settings, log=log, registry=metrics_registry)


def _registry_opener(project: Project) -> Callable[[], RegistryLike]:
    """Opens the project's model registry. An embedded MLflow store that does not exist
    yet (nothing trained) is not created: the holder says so and looks again next poll."""

    def open_registry() -> RegistryLike:
        tracking = project.config.tracking
        if tracking.tracking_uri is None:
            path = project.data_dir / MLFLOW_DB
            if not path.exists():
                raise BackendUnavailableError(f"no model registry at {path} yet (nothing trained)")
        from rtml.backends.tracking import open_registry as open_project_registry

        opened: RegistryLike = open_project_registry(project)
        return opened

    return open_registry
