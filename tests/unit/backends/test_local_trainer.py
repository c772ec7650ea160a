"""The local trainer (XGBoost + Optuna in-process) on random data with a planted signal."""

from __future__ import annotations

import numpy as np
import pytest

from rtml.backends.registry import open_backend
from rtml.backends.trainer.base import TrainingData, TuneRequest
from rtml.backends.trainer.config import LocalTrainerConfig
from rtml.backends.trainer.local import LocalTrainer, feature_importance, predict, threads_for
from rtml.core.training import metrics
from rtml.definitions.model import Choice, FloatParam, IntParam
from rtml.errors import InvalidInputError

NAMES = ["view__signal", "view__noise", "view__weak"]
SPACE = {
    "max_depth": IntParam(low=2, high=5),
    "learning_rate": FloatParam(low=0.05, high=0.3, log=True),
    "grow_policy": Choice(values=("depthwise", "lossguide")),
}


def _data(seed: int = 0, n: int = 3000) -> tuple[TrainingData, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    x[rng.random(size=x.shape) < 0.05] = np.nan
    logit = 2.0 * np.nan_to_num(x[:, 0]) + 0.3 * np.nan_to_num(x[:, 2]) - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    a, b = n * 6 // 10, n * 8 // 10
    return TrainingData(NAMES, x[:a], y[:a], x[a:b], y[a:b]), x[b:], y[b:]


def _request(metric: str = "roc_auc", trials: int = 5, seed: int = 7) -> TuneRequest:
    return TuneRequest(
        base_params={"n_estimators": 400, "objective": "binary:logistic"},
        search_space=SPACE,
        metric=metric,
        trials=trials,
        seed=seed,
        early_stopping_rounds=10,
    )


def test_tunes_a_model_that_finds_the_signal() -> None:
    data, x_test, y_test = _data()
    calls: list[tuple[int, int]] = []
    result = LocalTrainer(LocalTrainerConfig(n_jobs=1)).tune(
        data, _request(), lambda d, t: calls.append((d, t))
    )
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    assert len(result.trials) == 5 and [t.number for t in result.trials] == [0, 1, 2, 3, 4]
    assert result.validation_value == max(t.value for t in result.trials)
    best = max(result.trials, key=lambda t: t.value)
    assert result.best_iteration == best.best_iteration < 400  # early stopping on validation
    assert result.params["tree_method"] == "hist" and result.params["eval_metric"] == "auc"
    assert result.params["max_depth"] == best.params["max_depth"] and result.params["seed"] == 7
    # the booster is cut at its best iteration: its validation score is the trial's value
    valid_scores = predict(result.booster, data.x_valid, NAMES)
    assert metrics.roc_auc(data.y_valid, valid_scores) == pytest.approx(result.validation_value, abs=1e-9)
    assert metrics.roc_auc(y_test, predict(result.booster, x_test, NAMES)) > 0.8
    gains = feature_importance(result.booster, NAMES)
    assert list(gains) == NAMES and gains["view__signal"] > gains["view__noise"]


def test_the_same_seed_gives_the_same_model_and_another_seed_other_trials() -> None:
    data, _, _ = _data(1)
    trainer = LocalTrainer(LocalTrainerConfig(n_jobs=1))
    first = trainer.tune(data, _request(trials=4))
    again = trainer.tune(data, _request(trials=4))
    other = trainer.tune(data, _request(trials=4, seed=8))
    assert [t.params for t in first.trials] == [t.params for t in again.trials]
    assert first.booster == again.booster and first.params == again.params
    assert [t.params for t in first.trials] != [t.params for t in other.trials]


def test_log_loss_is_minimised() -> None:
    data, _, _ = _data(2)
    result = LocalTrainer(LocalTrainerConfig(n_jobs=1)).tune(data, _request("log_loss", trials=3))
    assert result.validation_value == min(t.value for t in result.trials)
    assert result.params["eval_metric"] == "logloss"
    assert metrics.log_loss(data.y_valid, predict(result.booster, data.x_valid)) == pytest.approx(
        result.validation_value, abs=1e-9
    )


def test_parameters_xgboost_refuses_stop_with_a_clear_error() -> None:
    data, _, _ = _data(3, n=300)
    request = TuneRequest(
        base_params={"objective": "binary:nonsense"},
        search_space={},
        metric="roc_auc",
        trials=1,
        seed=0,
        early_stopping_rounds=5,
    )
    with pytest.raises(
        InvalidInputError, match="XGBoost refused the parameters.*Fix: check the model's params"
    ):
        LocalTrainer(LocalTrainerConfig(n_jobs=1)).tune(data, request)


def test_opened_by_name_from_config_and_threads() -> None:
    trainer = open_backend("trainer", LocalTrainerConfig(n_jobs=2))
    assert isinstance(trainer, LocalTrainer) and trainer.config.n_jobs == 2
    trainer.close()
    assert threads_for(10_000, None) == 1
    assert threads_for(10_000, 3) == 3
    assert threads_for(10**9, None) >= 1
