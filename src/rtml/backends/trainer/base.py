"""The trainer port: tune a model's search space on a train/validation split.

Backends: ``local`` (XGBoost + Optuna in this process) and ``ray`` (Ray Tune with
OptunaSearch + ASHA, each trial a Ray Train XGBoost fit). Both use
:func:`rtml.core.training.search.booster_params`, so a trial's parameters mean the same
model on either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from rtml.core.training.report import Trial
from rtml.definitions.model import SearchParam

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class TrainingData:
    """Float32 feature matrices (NaN = missing) in ``feature_names`` order, 0/1 labels."""

    feature_names: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray


@dataclass(frozen=True)
class TuneRequest:
    base_params: Mapping[str, Any]  # the Model's fixed params
    search_space: Mapping[str, SearchParam]
    metric: str  # roc_auc | pr_auc | log_loss, on the validation split
    trials: int
    seed: int
    early_stopping_rounds: int


@dataclass
class TuneResult:
    params: dict[str, Any]  # the best trial's full xgboost.train parameters
    best_iteration: int
    booster: bytes  # Booster.save_raw("ubj") of the best trial's model
    validation_value: float
    trials: list[Trial] = field(default_factory=list)
    seconds: float = 0.0


# progress(done_trials, total_trials)
TrialProgress = Callable[[int, int], None]


class Trainer(Protocol):
    def tune(
        self, data: TrainingData, request: TuneRequest, progress: TrialProgress | None = None
    ) -> TuneResult: ...

    def close(self) -> None: ...
