"""The files logged with a training run, written into one directory that is then uploaded
as the run's artifacts in one call.

Layout (relative to the run's artifact root)::

    model/                    MLflow model (flavors xgboost + python_function): MLmodel with the
                              signature, model.ubj (the booster), input_example.json, requirements
    feature_importance.png    roc.png  pr.png  calibration.png
    features.json             the exact feature list (booster input order) and definitions fingerprint
    feature_stats.json        per-feature statistics of the training split (drift monitoring)
    lineage.json              event-time range, row counts per split, the training set's SHA-256
    trials.json               every tuning trial: parameters, validation metric, best iteration
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rtml.backends.tracking.plots import write_plots
from rtml.core.training.report import TrainingReport

MODEL_DIR = "model"
BOOSTER_FILE = "model.ubj"
BOOSTER_PATH = f"{MODEL_DIR}/{BOOSTER_FILE}"
FEATURES_FILE = "features.json"


def write_run_files(report: TrainingReport, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_plots(report, directory)
    _write_json(
        directory / FEATURES_FILE,
        {
            "model": report.model,
            "feature_names": list(report.feature_names),
            "definitions_fingerprint": report.lineage.definitions_fingerprint,
        },
    )
    _write_json(directory / "feature_stats.json", [asdict(s) for s in report.feature_stats])
    _write_json(directory / "lineage.json", lineage(report))
    _write_json(directory / "trials.json", [asdict(t) for t in report.trials])
    write_model(report, directory / MODEL_DIR)


def lineage(report: TrainingReport) -> dict[str, Any]:
    return {
        **asdict(report.lineage),
        "splits": {
            "train": asdict(report.train),
            "validation": asdict(report.validation),
            "test": asdict(report.test),
        },
        "gap_ms": report.gap_ms,
    }


def write_model(report: TrainingReport, directory: Path) -> None:
    """An MLflow model directory for ``report``'s booster: loadable with
    ``mlflow.xgboost.load_model`` / ``mlflow.pyfunc.load_model``; rtml itself only reads
    ``model.ubj``."""
    import mlflow.xgboost
    import numpy as np
    import xgboost as xgb
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    booster = xgb.Booster()
    booster.load_model(bytearray(report.booster))
    # Every input is numeric and may be missing (XGBoost routes missing values itself).
    inputs = Schema([ColSpec("double", name, required=False) for name in report.feature_names])
    outputs = Schema([TensorSpec(np.dtype(np.float32), (-1,))])
    mlflow.xgboost.save_model(
        booster,
        str(directory),
        signature=ModelSignature(inputs=inputs, outputs=outputs),
        input_example=_input_example(report),
        # Given, not inferred: inference starts a Python process that loads the model (seconds).
        pip_requirements=[f"xgboost=={xgb.__version__}"],
        model_format="ubj",
        metadata={
            "rtml_model": report.model,
            "definitions_fingerprint": report.lineage.definitions_fingerprint,
        },
    )


def _input_example(report: TrainingReport) -> Any:
    if not report.input_example:
        return None
    import pandas as pd

    rows = [{name: _number(row.get(name)) for name in report.feature_names} for row in report.input_example]
    return pd.DataFrame(rows, columns=list(report.feature_names), dtype="float64")


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool | str):
        return float(value) if isinstance(value, bool) else math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(_plain(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars as Python numbers, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
