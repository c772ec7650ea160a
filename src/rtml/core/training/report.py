"""What one ``rtml train`` produces, handed from the trainer to tracking and promotion.

Plain data (no XGBoost, no MLflow): the model itself travels as XGBoost's raw UBJSON bytes
(``Booster.save_raw("ubj")``), loadable anywhere with ``Booster().load_model(bytearray(raw))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Metric names, as logged to tracking and compared by the promotion policy.
ROC_AUC = "roc_auc"
PR_AUC = "pr_auc"
LOG_LOSS = "log_loss"
CALIBRATION_ERROR = "calibration_error"
LOWER_IS_BETTER = frozenset({LOG_LOSS, CALIBRATION_ERROR})


@dataclass(frozen=True)
class TimeWindow:
    """A split's prediction points: event times in ``[start_ms, end_ms]``, ``rows`` of them."""

    start_ms: int
    end_ms: int
    rows: int
    positives: int


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict[str, Any]
    value: float  # the validation metric (the model's ``metric``)
    best_iteration: int
    state: str = "complete"  # complete | pruned | failed


@dataclass(frozen=True)
class Curve:
    """Points of a curve for the plots: ROC (fpr, tpr), PR (recall, precision), calibration
    (mean predicted, observed rate, count per bin)."""

    x: list[float]
    y: list[float]
    counts: list[int] | None = None


@dataclass(frozen=True)
class FeatureStats:
    """One feature over the training split, for drift monitoring (PSI against serving)."""

    name: str
    count: int
    nulls: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    # Bin edges (len k+1, from training quantiles) and the share of rows in each bin.
    edges: list[float]
    shares: list[float]


@dataclass(frozen=True)
class Lineage:
    """Where the training set came from."""

    first_event_ms: int | None
    last_event_ms: int | None
    rows: int
    positives: int
    dataset_sha256: str  # of the training set's Arrow IPC bytes
    definitions_fingerprint: str


@dataclass
class TrainingReport:
    model: str  # the rtml Model's name, also the registered model's name
    metric: str  # the model's tuning metric (``Model.metric``)
    feature_names: list[str]  # the model's inputs, in the order the booster expects
    params: dict[str, Any]  # the best trial's full XGBoost parameters
    best_iteration: int
    booster: bytes  # Booster.save_raw("ubj")
    trainer: str  # "local" | "ray"
    seed: int
    train: TimeWindow
    validation: TimeWindow
    test: TimeWindow
    gap_ms: int  # the label horizon kept empty between splits
    test_metrics: dict[str, float]  # ROC_AUC, PR_AUC, LOG_LOSS, CALIBRATION_ERROR
    validation_metrics: dict[str, float]
    trials: list[Trial]
    feature_importance: dict[str, float]  # gain, by feature name
    roc: Curve
    pr: Curve
    calibration: Curve
    feature_stats: list[FeatureStats]
    lineage: Lineage
    # A few training rows (feature name -> value) for the model signature's input example.
    input_example: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    # Extra numbers a caller wants logged (e.g. the demo's oracle AUC).
    extra_metrics: dict[str, float] = field(default_factory=dict)
