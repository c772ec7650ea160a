"""Training: one XGBoost fit, and 8 tuning trials in-process against Ray Tune.

    python bench/training.py [--rows 1000000] [--rounds 200] [--tune-rows 200000] [--trials 8]
                             [--device cpu|cuda] [--parts fit,tune]

The data is synthetic, not the pipeline's: 20 float32 features with a planted logistic
signal made like the e-commerce example's (rtml.datagen.planted's intercept and
coefficients over 7 generated behaviour features: view/cart/purchase counts, a price
ratio, a conversion rate), 6 noisy copies of them and 7 pure-noise columns, 2% missing
values. The planted probability gives the oracle AUC the models are held against.

* ``fit``   one ``xgboost.train`` (``hist``, depth 6, eta 0.1, ``--rounds`` rounds, no early
            stopping, every core) on ``--rows`` rows; DMatrix build timed apart.
            ``--device cuda`` adds the same fit on the GPU (needs the GPU build of xgboost:
            ``pip uninstall xgboost-cpu && pip install xgboost``; the ``xgboost-cpu`` wheel rtml
            depends on has none, and the row then says so).
* ``tune``  ``--trials`` trials of the same search space on ``--tune-rows`` rows (75% train,
            25% validation, early stopping 30 rounds): rtml's local trainer (Optuna in this
            process) against the ray trainer (Ray Tune + ASHA, one Ray Train worker of 1 CPU
            per trial, as many trials at once as cores), and the ray trainer again with ASHA
            unable to stop a trial (Ray's overhead alone). Ray's start-up is timed apart.

Prints a table and writes ``bench/results/training.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from importlib.metadata import version
from typing import Any

import numpy as np
import xgboost
from common import report

from rtml.backends.trainer.base import TrainingData, TuneRequest, TuneResult
from rtml.backends.trainer.config import LocalTrainerConfig, RayTrainerConfig
from rtml.backends.trainer.local import LocalTrainer
from rtml.core.training import metrics
from rtml.datagen.planted import COEFFICIENTS, INTERCEPT
from rtml.definitions.model import Choice, FloatParam, IntParam

FEATURES = 20
SPACE = {
    "max_depth": IntParam(low=3, high=8),
    "learning_rate": FloatParam(low=0.03, high=0.3, log=True),
    "min_child_weight": Choice(values=(1, 5, 20)),
}


def synthetic(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, p)``: features, drawn labels and the planted probability."""
    rng = np.random.default_rng(seed)
    views_1h = rng.poisson(0.8, rows)
    inputs = {
        "views_product_1h": np.log1p(views_1h),
        "views_product_1d": np.log1p(views_1h + rng.poisson(1.5, rows)),
        "carts_product_1d": np.log1p(rng.poisson(0.3, rows)),
        "purchases_user_30d": np.log1p(rng.poisson(0.6, rows)),
        "views_user_10m": np.log1p(rng.poisson(2.0, rows)),
        "price_ratio": rng.lognormal(0.0, 0.08, rows) - 1.0,
        "product_conversion_7d": rng.beta(2.0, 8.0, rows),
    }
    logit = INTERCEPT + sum(COEFFICIENTS[name] * value for name, value in inputs.items())
    p = 1.0 / (1.0 + np.exp(-logit))
    y = (rng.random(rows) < p).astype(np.float32)
    signal = np.column_stack(list(inputs.values()))
    copies = signal[:, :6] + rng.normal(0.0, 0.5, (rows, 6))
    noise = rng.normal(0.0, 1.0, (rows, FEATURES - 13))
    x = np.column_stack([signal, copies, noise]).astype(np.float32)
    x[rng.random(x.shape) < 0.02] = np.nan
    return x, y, p


def fit_row(x: np.ndarray, y: np.ndarray, holdout: tuple, rounds: int, device: str) -> list[Any]:
    params = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "max_depth": 6,
        "eta": 0.1,
        "eval_metric": "auc",
        "seed": 0,
        "device": device,
    }
    t0 = time.perf_counter()
    dtrain = xgboost.QuantileDMatrix(x, label=y, missing=np.nan) if device == "cuda" else None
    if dtrain is None:
        dtrain = xgboost.DMatrix(x, label=y, missing=np.nan, nthread=os.cpu_count() or 1)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    booster = xgboost.train(params, dtrain, num_boost_round=rounds)
    train_s = time.perf_counter() - t0
    x_test, y_test, p_test = holdout
    auc = metrics.roc_auc(y_test, booster.predict(xgboost.DMatrix(x_test, missing=np.nan)))
    label = f"fit {len(y):,} rows x {x.shape[1]}, {rounds} rounds ({device})"
    speed = round(len(y) * rounds / train_s / 1e6, 2)
    oracle = round(metrics.roc_auc(y_test, p_test), 4)
    return [label, round(build_s, 2), round(train_s, 2), speed, round(auc, 4), oracle, "-"]


def cuda_problem() -> str | None:
    """Why a GPU fit cannot run here, or None."""
    if not xgboost.build_info().get("USE_CUDA"):
        return "GPU build of xgboost not installed (pip install xgboost)"
    try:
        probe = xgboost.DMatrix(np.zeros((4, 1), dtype=np.float32), label=np.array([0, 1, 0, 1]))
        xgboost.train({"device": "cuda", "tree_method": "hist"}, probe, num_boost_round=1)
    except xgboost.core.XGBoostError as exc:
        return f"no usable GPU: {str(exc).splitlines()[0][:80]}"
    return None


def request_rounds(request: TuneRequest) -> int:
    return int(request.base_params["n_estimators"])


def tune_rows(rows: int, trials: int, seed: int) -> tuple[list[list[Any]], dict[str, Any]]:
    from rtml.backends.trainer.ray import RayTrainer

    x, y, p = synthetic(rows, seed + 1)
    cut = int(rows * 0.75)
    data = TrainingData([f"f{i}" for i in range(FEATURES)], x[:cut], y[:cut], x[cut:], y[cut:])
    request = TuneRequest({"n_estimators": 300}, SPACE, "roc_auc", trials, seed, 30)
    oracle = round(metrics.roc_auc(y[cut:], p[cut:]), 4)
    label = f"{trials} trials, {rows:,} rows"

    t0 = time.perf_counter()
    local = LocalTrainer(LocalTrainerConfig()).tune(data, request)
    local_s = time.perf_counter() - t0

    trainer = RayTrainer(RayTrainerConfig())
    # The same trials on Ray with ASHA unable to stop any (its first rung at the most rounds):
    # Ray's own overhead, apart from what pruning saves.
    unpruned = RayTrainer(RayTrainerConfig(grace_period=request_rounds(request)))
    try:
        t0 = time.perf_counter()
        trainer.connect()
        start_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        remote = trainer.tune(data, request)
        ray_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        full = unpruned.tune(data, request)
        full_s = time.perf_counter() - t0
    finally:
        trainer.close()

    def row(name: str, result: TuneResult, seconds: float, start: float | None) -> list[Any]:
        states = [t.state for t in result.trials]
        summary = f"{states.count('complete')} complete, {states.count('pruned')} pruned"
        return [
            f"tune {label}: {name}",
            "-" if start is None else round(start, 1),
            round(seconds, 1),
            round(seconds / trials, 1),
            round(result.validation_value, 4),
            oracle,
            summary,
        ]

    rows_out = [
        row("in-process (Optuna)", local, local_s, None),
        row("Ray Tune + ASHA", remote, ray_s, start_s),
        row("Ray Tune, no pruning", full, full_s, None),
    ]
    extra = {
        "tune": {
            "rows": rows,
            "trials": trials,
            "local_s": round(local_s, 2),
            "ray_start_s": round(start_s, 2),
            "ray_s": round(ray_s, 2),
            "ray_unpruned_s": round(full_s, 2),
            "ray_unpruned_auc": full.validation_value,
            "local_auc": local.validation_value,
            "ray_auc": remote.validation_value,
            "oracle_auc": oracle,
            "ray_trials": [t.__dict__ for t in remote.trials],
        }
    }
    return rows_out, extra


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--tune-rows", type=int, default=200_000)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--parts", default="fit,tune")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    extra: dict[str, Any] = {"xgboost": xgboost.__version__, "ray": version("ray"), "args": vars(args)}
    if "fit" in parts:
        x, y, _ = synthetic(args.rows, args.seed)
        holdout = synthetic(200_000, args.seed + 7)
        rows = [fit_row(x, y, holdout, args.rounds, "cpu")]
        if args.device == "cuda":
            problem = cuda_problem()
            if problem is None:
                rows.append(fit_row(x, y, holdout, args.rounds, "cuda"))
            else:
                rows.append([f"fit {args.rows:,} rows (cuda): skipped", "-", "-", "-", "-", "-", problem])
        del x, y
        columns = ["run", "DMatrix s", "train s", "M row-rounds/s", "test AUC", "oracle AUC", "note"]
        report("training", "One XGBoost fit (synthetic planted signal)", columns, rows, extra)
    if "tune" in parts:
        rows, tune_extra = tune_rows(args.tune_rows, args.trials, args.seed)
        columns = ["run", "Ray start s", "wall s", "s / trial", "best valid AUC", "oracle AUC", "trials"]
        report("training_tune", "Tuning: in-process against Ray Tune", columns, rows, extra | tune_extra)


if __name__ == "__main__":
    main()
