"""Typed config of experiment tracking and the model registry (``tracking`` in ``rtml.yaml``).
See docs/model-registry.md."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"


class MlflowTrackingConfig(BaseModel):
    """MLflow. ``tracking_uri`` None: a local SQLite store ``<data_dir>/mlflow.db`` with
    artifacts under ``<data_dir>/mlartifacts`` (embedded); at scale the URL of an MLflow
    tracking server, e.g. ``http://127.0.0.1:5000`` (on PostgreSQL, started by
    scripts/services.sh)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["mlflow"] = "mlflow"
    tracking_uri: str | None = None
    # Only for a local store: where artifacts go; None: <data_dir>/mlartifacts.
    artifact_location: Path | None = None
    # None: the project's name.
    experiment: str | None = None
    # A tracking server that does not answer fails the call after this long.
    timeout_s: float = Field(default=10.0, gt=0)


TrackingConfig = MlflowTrackingConfig
