"""Experiment tracking and the model registry: MLflow (local SQLite store or a tracking server).

:func:`open_registry` is how training, promotion, the CLI and serving get the project's
registry; :func:`for_project` fills the names ``rtml.yaml`` leaves to the project.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rtml.backends.tracking.base import LoadedModel, ModelRegistry, ModelVersion
from rtml.backends.tracking.config import MLFLOW_ARTIFACTS, MLFLOW_DB, TrackingConfig

if TYPE_CHECKING:
    from rtml.backends.tracking.history import RegistryWithHistory
    from rtml.project import Project

__all__ = ["LoadedModel", "ModelRegistry", "ModelVersion", "for_project", "open_registry"]


def for_project(config: TrackingConfig, *, project: str, data_dir: Path) -> TrackingConfig:
    """``config`` with the project's names filled in where it left them ``None``: the local
    store ``sqlite:///<data_dir>/mlflow.db`` with artifacts under ``<data_dir>/mlartifacts``,
    the experiment named after the project, and ``{project}`` in ``registered_model_name``."""
    data_dir = Path(data_dir).resolve()
    update: dict[str, object] = {}
    if config.experiment is None:
        update["experiment"] = project
    if "{project}" in config.registered_model_name:
        update["registered_model_name"] = config.registered_model_name.replace("{project}", project)
    if config.tracking_uri is None:
        update["tracking_uri"] = f"sqlite:///{data_dir / MLFLOW_DB}"
        if config.artifact_location is None:
            update["artifact_location"] = data_dir / MLFLOW_ARTIFACTS
    if config.artifact_location is not None and not config.artifact_location.is_absolute():
        update["artifact_location"] = config.artifact_location.resolve()
    return config.model_copy(update=update) if update else config


def open_registry(project: Project) -> RegistryWithHistory:
    """The project's model registry (the caller closes it)."""
    from rtml.backends.registry import open_backend

    config = for_project(project.config.tracking, project=project.config.project, data_dir=project.data_dir)
    registry: RegistryWithHistory = open_backend("tracking", config)
    return registry
