"""The tracking port: log a training run, register its model version, move aliases, load models.

One backend today (MLflow, :mod:`rtml.backends.tracking.mlflow`); the port keeps training,
promotion and serving free of MLflow imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from rtml.core.training.report import TrainingReport


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: str
    run_id: str
    created_ms: int
    aliases: tuple[str, ...] = ()
    # The test metrics logged with the run (roc_auc, pr_auc, log_loss, calibration_error).
    metrics: Mapping[str, float] = field(default_factory=dict)
    # rtml's tags: definitions fingerprint, test window, trainer, ...
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedModel:
    """A registered version, ready to predict: XGBoost's raw model and its input order."""

    model: str
    version: str
    booster: bytes  # Booster.save_raw("ubj")
    feature_names: tuple[str, ...]
    definitions_fingerprint: str


class ModelRegistry(Protocol):
    def log_run(self, report: TrainingReport) -> ModelVersion:
        """Log params, metrics, artifacts and lineage of ``report`` as one run and register
        its model as a new version of ``report.model``."""
        ...

    def versions(self, model: str) -> list[ModelVersion]:
        """Every version of ``model``, newest first (empty if none is registered)."""
        ...

    def alias_version(self, model: str, alias: str) -> str | None:
        """The version ``alias`` points at, or None. Cheap: serving polls it."""
        ...

    def set_alias(self, model: str, alias: str, version: str) -> None: ...

    def load(self, model: str, version: str) -> LoadedModel: ...

    def close(self) -> None: ...
