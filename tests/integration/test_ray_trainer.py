"""The ``ray`` trainer against a real local Ray (started once for the module by the trainer
itself): Ray Tune with OptunaSearch + ASHA, each trial a Ray Train XGBoost fit.

No mocks. The data: a synthetic binary problem with a planted logistic signal (an
interaction and a threshold effect among 8 features, the rest noise), small enough that the
module's 4 trials stay well under a minute of training after Ray's start-up.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import xgboost

from rtml.backends.registry import open_backend
from rtml.backends.trainer.base import TrainingData, TuneRequest, TuneResult
from rtml.backends.trainer.config import LocalTrainerConfig, RayTrainerConfig
from rtml.backends.trainer.local import LocalTrainer
from rtml.backends.trainer.ray import RayTrainer
from rtml.core.training import metrics
from rtml.definitions.model import Choice, FloatParam, IntParam
from rtml.errors import BackendUnavailableError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FEATURES = [f"f{i}" for i in range(8)]
SEED = 11
TRIALS = 4
REQUEST = TuneRequest(
    base_params={"n_estimators": 120},
    search_space={
        "max_depth": IntParam(low=2, high=6),
        "learning_rate": FloatParam(low=0.05, high=0.3, log=True),
        "min_child_weight": Choice(values=(1, 4)),
    },
    metric="roc_auc",
    trials=TRIALS,
    seed=SEED,
    early_stopping_rounds=15,
)


def _data(rows: int = 6000, seed: int = 0) -> TrainingData:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES))).astype(np.float32)
    x[rng.random(x.shape) < 0.02] = np.nan  # some missing values, as real features have
    z = np.nan_to_num(x)
    logit = 1.2 * z[:, 0] - 0.8 * z[:, 1] + 0.9 * z[:, 2] * z[:, 3] + 1.5 * (z[:, 4] > 0.5) - 0.7
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    cut = int(rows * 0.75)
    return TrainingData(FEATURES, x[:cut], y[:cut], x[cut:], y[cut:])


def _auc(raw: bytes, data: TrainingData) -> float:
    booster = xgboost.Booster()
    booster.load_model(bytearray(raw))
    scores = booster.predict(xgboost.DMatrix(data.x_valid, feature_names=FEATURES, missing=np.nan))
    return metrics.roc_auc(data.y_valid, scores)


def test_unreachable_cluster_fails_fast() -> None:
    """First in the module: Ray is not running in this process yet."""
    trainer = RayTrainer(RayTrainerConfig(address="ray://127.0.0.1:1"))
    # rtml's own reachability check answers (in seconds), not Ray Client's 30 s of retries.
    with pytest.raises(
        BackendUnavailableError, match=r"cannot reach the Ray cluster at 'ray://127\.0\.0\.1:1'.*Fix: "
    ):
        trainer.tune(_data(rows=200), REQUEST)
    trainer.close()


@pytest.fixture(scope="module")
def data() -> TrainingData:
    return _data()


@pytest.fixture(scope="module")
def ray_run(data: TrainingData) -> Iterator[tuple[TuneResult, list[tuple[int, int]]]]:
    """One tuning run on a local Ray started by the trainer (1 CPU per trial, 2 at a time on
    this 2-core machine; a short grace period so that ASHA has rungs to act on)."""
    trainer = open_backend("trainer", RayTrainerConfig(grace_period=10, reduction_factor=2))
    assert isinstance(trainer, RayTrainer)
    calls: list[tuple[int, int]] = []
    try:
        yield trainer.tune(data, REQUEST, progress=lambda done, total: calls.append((done, total))), calls
    finally:
        trainer.close()


def test_ray_model_matches_the_local_trainer(ray_run: tuple[TuneResult, list], data: TrainingData) -> None:
    result, _ = ray_run
    local = LocalTrainer(LocalTrainerConfig(n_jobs=1)).tune(data, REQUEST)
    ray_auc = _auc(result.booster, data)
    # The booster loads in plain XGBoost and scores what the trainer says it scores.
    assert ray_auc == pytest.approx(result.validation_value, abs=1e-9)
    assert ray_auc > 0.75  # the planted signal is found (the noise-only AUC is 0.5)
    assert abs(ray_auc - _auc(local.booster, data)) <= 0.02
    # The random start-up trials (min(10, max(3, trials // 2)) = 3) draw the same parameters
    # from the same seed, and one that Ray ran to its end is the very same model.
    startup = 3
    assert [t.params for t in result.trials[:startup]] == [t.params for t in local.trials[:startup]]
    for on_ray, in_process in zip(result.trials[:startup], local.trials[:startup], strict=True):
        if on_ray.state == "complete":
            assert on_ray.value == pytest.approx(in_process.value, abs=1e-12)
            assert on_ray.best_iteration == in_process.best_iteration
    # Same parameter names and meaning as the local trainer's: the fixed and defaulted ones
    # are equal, and the booster was cut to its best iteration.
    for key in ("objective", "tree_method", "eval_metric", "seed"):
        assert result.params[key] == local.params[key]
    assert set(REQUEST.search_space) - {"learning_rate"} <= set(result.params)
    assert "eta" in result.params
    booster = xgboost.Booster()
    booster.load_model(bytearray(result.booster))
    assert booster.num_boosted_rounds() == result.best_iteration + 1


def test_every_trial_is_recorded(ray_run: tuple[TuneResult, list]) -> None:
    result, calls = ray_run
    assert [t.number for t in result.trials] == list(range(TRIALS))
    assert calls[-1] == (TRIALS, TRIALS) and [done for done, _ in calls] == list(range(1, TRIALS + 1))
    for trial in result.trials:
        assert trial.state in ("complete", "pruned")
        assert set(trial.params) == set(REQUEST.search_space)
        assert 2 <= trial.params["max_depth"] <= 6
        assert 0.05 <= trial.params["learning_rate"] <= 0.3
        assert trial.params["min_child_weight"] in (1, 4)
        assert 0.5 < trial.value <= 1.0 and not math.isnan(trial.value)
        assert 0 <= trial.best_iteration < 120
    complete = [t for t in result.trials if t.state == "complete"]
    assert complete, "at least one trial runs to its end"
    assert result.validation_value == max(t.value for t in complete)
