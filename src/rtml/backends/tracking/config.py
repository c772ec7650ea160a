"""Typed config of experiment tracking and the model registry (``tracking`` in ``rtml.yaml``).
See docs/model-registry.md."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
    # The registered model's name in MLflow for rtml model {model}. Registered model names
    # are global on a tracking server, so projects that share one and use the same model
    # names should say "{project}.{model}" ({project}: the project's name).
    registered_model_name: str = "{model}"
    # A tracking server that does not answer fails the call after this long.
    timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("registered_model_name")
    @classmethod
    def _template(cls, value: str) -> str:
        rest = value.replace("{model}", "").replace("{project}", "")
        if "{model}" not in value or "{" in rest or "}" in rest:
            raise ValueError(
                f"{value!r} is not a registered model name template. Fix: use {{model}} once, and "
                "optionally {project}, e.g. '{project}.{model}'"
            )
        return value


TrackingConfig = MlflowTrackingConfig
