"""A model's search space and fixed parameters as XGBoost's native training parameters.

Shared by every trainer so that the same trial parameters mean the same model everywhere:
:func:`booster_params` turns a model's ``params`` (sklearn-style names accepted) plus one
trial's choices into ``xgboost.train`` parameters and a number of boosting rounds, and
:func:`suggest` draws one trial's choices from an Optuna trial (duck-typed: no import).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from rtml.core.training.report import LOG_LOSS, PR_AUC, ROC_AUC
from rtml.definitions.model import Choice, FloatParam, IntParam, SearchParam

DEFAULT_ROUNDS = 300
# The model's metric -> XGBoost's eval_metric (early stopping watches it on validation).
EVAL_METRIC = {ROC_AUC: "auc", PR_AUC: "aucpr", LOG_LOSS: "logloss"}
# sklearn-API names -> native ones; n_estimators is the number of rounds, not a parameter.
_ALIASES = {"learning_rate": "eta", "random_state": "seed", "n_jobs": "nthread", "reg_alpha": "alpha"}
_ALIASES |= {"reg_lambda": "lambda"}
_NOT_PARAMS = {"n_estimators", "early_stopping_rounds"}


class OptunaTrialLike(Protocol):
    def suggest_int(self, name: str, low: int, high: int, *, log: bool = ...) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = ...) -> float: ...
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


def suggest(trial: OptunaTrialLike, space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """One trial's choices, in the space's order (the order matters for seeded samplers)."""
    chosen: dict[str, Any] = {}
    for name, param in space.items():
        if isinstance(param, IntParam):
            chosen[name] = trial.suggest_int(name, param.low, param.high, log=param.log)
        elif isinstance(param, FloatParam):
            chosen[name] = trial.suggest_float(name, param.low, param.high, log=param.log)
        elif isinstance(param, Choice):
            chosen[name] = trial.suggest_categorical(name, list(param.values))
    return chosen


def booster_params(
    base: Mapping[str, Any],
    chosen: Mapping[str, Any],
    *,
    metric: str,
    seed: int,
    n_jobs: int | None = None,
) -> tuple[dict[str, Any], int]:
    """``(params, num_boost_round)`` for ``xgboost.train``: the model's fixed ``base`` params,
    overridden by the trial's ``chosen`` ones, with rtml's defaults (binary logistic,
    ``hist``, the eval metric of ``metric``, the seed) where the model says nothing."""
    merged = {**base, **chosen}
    rounds = int(merged.get("n_estimators", DEFAULT_ROUNDS))
    params: dict[str, Any] = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "eval_metric": EVAL_METRIC[metric],
        "seed": seed,
    }
    for key, value in merged.items():
        if key not in _NOT_PARAMS:
            params[_ALIASES.get(key, key)] = value
    if n_jobs is not None:
        params["nthread"] = n_jobs
    return params, rounds
