"""The ``local`` trainer: XGBoost (native API, ``hist``) tuned by Optuna in this process.

Each trial draws parameters from the model's search space (Optuna's TPE sampler seeded
with the request's seed), fits on the training split and stops early on the validation
split; its value is the model's metric on validation, computed by
:mod:`rtml.core.training.metrics` (the same numbers the report shows). The best trial's
booster, cut to its best iteration, is the result. Same data, request and thread count:
the same trials and the same model.

Also the XGBoost helpers the rest of training shares: :func:`fit` (one fit with early
stopping), :func:`predict` (a raw UBJSON booster on a float32 matrix) and
:func:`feature_importance`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rtml.backends.trainer.base import TrainingData, TrialProgress, TuneRequest, TuneResult
from rtml.backends.trainer.config import LocalTrainerConfig
from rtml.core.training import metrics
from rtml.core.training.report import LOWER_IS_BETTER, Trial
from rtml.core.training.search import booster_params, suggest
from rtml.errors import InvalidInputError

METRIC_FUNCTIONS = {
    "roc_auc": metrics.roc_auc,
    "pr_auc": metrics.pr_auc,
    "log_loss": metrics.log_loss,
}
MIN_STARTUP_TRIALS = 3  # random trials before TPE models the results (at most 10, Optuna's default)
# n_jobs None: one XGBoost thread per this many training rows, up to every core. On small
# sets more threads only add synchronisation (and on a busy machine they wait for each other).
ROWS_PER_THREAD = 20_000


def threads_for(rows: int, configured: int | None) -> int:
    """XGBoost threads for a fit on ``rows`` training rows: ``configured``, or chosen from the size."""
    if configured is not None:
        return configured
    return max(1, min(os.cpu_count() or 1, rows // ROWS_PER_THREAD))


@dataclass(frozen=True)
class TrainResult:
    raw: bytes  # Booster.save_raw("ubj"), cut to the best iteration
    best_iteration: int
    validation_scores: np.ndarray


def _xgb() -> Any:
    import xgboost

    return xgboost


def fit(
    data: TrainingData,
    params: Mapping[str, Any],
    rounds: int,
    *,
    early_stopping_rounds: int,
) -> TrainResult:
    """One ``xgboost.train`` with early stopping on the validation split; the booster is cut
    to its best iteration, so predicting with it needs no iteration range."""
    xgb = _xgb()
    names = list(data.feature_names) or None
    dtrain = xgb.DMatrix(data.x_train, label=data.y_train, feature_names=names, missing=np.nan)
    dvalid = xgb.DMatrix(data.x_valid, label=data.y_valid, feature_names=names, missing=np.nan)
    try:
        booster = xgb.train(
            dict(params),
            dtrain,
            num_boost_round=rounds,
            evals=[(dvalid, "validation")],
            early_stopping_rounds=early_stopping_rounds,
            verbose_eval=False,
        )
    except xgb.core.XGBoostError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(
            f"XGBoost refused the parameters {dict(params)}: {first}. Fix: check the model's params "
            "and search_space"
        ) from None
    best = int(getattr(booster, "best_iteration", rounds - 1))
    best_model = booster[: best + 1]
    scores = best_model.predict(dvalid)
    return TrainResult(raw=bytes(best_model.save_raw("ubj")), best_iteration=best, validation_scores=scores)


def predict(raw: bytes, x: np.ndarray, feature_names: Sequence[str] | None = None) -> np.ndarray:
    """Scores (probabilities) of a raw UBJSON booster for the rows of ``x``."""
    xgb = _xgb()
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    booster.set_param({"nthread": threads_for(len(x), None)})
    names = list(feature_names) if feature_names else booster.feature_names
    matrix = xgb.DMatrix(np.ascontiguousarray(x, dtype=np.float32), feature_names=names, missing=np.nan)
    return np.asarray(booster.predict(matrix), dtype=np.float64)


def feature_importance(raw: bytes, feature_names: Sequence[str]) -> dict[str, float]:
    """Total gain of each feature (0 for a feature no tree splits on), in the model's order."""
    xgb = _xgb()
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    gains = booster.get_score(importance_type="total_gain")
    return {name: float(gains.get(name, 0.0)) for name in feature_names}


class LocalTrainer:
    def __init__(self, config: LocalTrainerConfig | None = None) -> None:
        self.config = config or LocalTrainerConfig()

    def tune(
        self, data: TrainingData, request: TuneRequest, progress: TrialProgress | None = None
    ) -> TuneResult:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if request.metric not in METRIC_FUNCTIONS:
            raise InvalidInputError(
                f"unknown tuning metric {request.metric!r}. Fix: use one of {', '.join(METRIC_FUNCTIONS)}"
            )
        score = METRIC_FUNCTIONS[request.metric]
        started = time.perf_counter()
        sampler = optuna.samplers.TPESampler(
            seed=request.seed, n_startup_trials=min(10, max(MIN_STARTUP_TRIALS, request.trials // 2))
        )
        lower = request.metric in LOWER_IS_BETTER
        study = optuna.create_study(direction="minimize" if lower else "maximize", sampler=sampler)
        trials: list[Trial] = []
        threads = threads_for(len(data.y_train), self.config.n_jobs)
        best: tuple[float, TrainResult, dict[str, Any]] | None = None

        def objective(trial: Any) -> float:
            nonlocal best
            chosen = suggest(trial, request.search_space)
            params, rounds = booster_params(
                request.base_params,
                chosen,
                metric=request.metric,
                seed=request.seed,
                n_jobs=threads,
            )
            result = fit(data, params, rounds, early_stopping_rounds=request.early_stopping_rounds)
            value = score(data.y_valid, result.validation_scores)
            trials.append(Trial(trial.number, dict(chosen), value, result.best_iteration))
            if best is None or (value < best[0] if lower else value > best[0]):
                best = (value, result, params)
            return value

        def report(study: Any, trial: Any) -> None:
            if progress is not None:
                progress(len(study.trials), request.trials)

        study.optimize(objective, n_trials=request.trials, callbacks=[report], catch=())
        if best is None:  # pragma: no cover - optimize raises before this
            raise InvalidInputError("no tuning trial finished. Fix: check the model's params")
        value, result, params = best
        return TuneResult(
            params=params,
            best_iteration=result.best_iteration,
            booster=result.raw,
            validation_value=value,
            trials=trials,
            seconds=time.perf_counter() - started,
        )

    def close(self) -> None:
        return None
