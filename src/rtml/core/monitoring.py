"""Monitoring of a served model, from what it served and what happened after: pure functions.

* :func:`online_auc` -- ROC-AUC of served scores against the labels that arrived after
  their horizon (``None`` while one class is missing);
* :func:`feature_psi` -- per feature, the population stability index of the served values
  against the training split's statistics (:class:`~rtml.core.training.report.FeatureStats`:
  quantile bin edges and shares), binned with the training edges
  (:func:`~rtml.core.training.stats.bin_shares`);
* :func:`feature_skew` -- how many served rows differ from the offline point-in-time values
  of the same (key, time): training/serving skew, row by row;
* :func:`evaluate_alerts` -- the alert rules (:class:`AlertRules`) over the numbers above
  and the serving error rate.

No I/O here: :mod:`rtml.monitoring` reads the prediction log and the offline store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rtml.core.training.metrics import roc_auc
from rtml.core.training.report import FeatureStats
from rtml.core.training.stats import bin_shares, psi

# Relative tolerance of "the same value" for floating features (DESIGN: 1e-9 relative).
SKEW_RTOL = 1e-9


@dataclass(frozen=True, kw_only=True)
class AlertRules:
    """When a monitoring number raises an alert."""

    max_psi: float = 0.2  # per feature: a larger PSI is a distribution shift
    max_auc_drop: float = 0.05  # online AUC more than this below the reference (test) AUC
    max_error_rate: float = 0.01  # failed prediction requests / requests
    min_labelled: int = 100  # fewer labelled predictions: the online AUC is not judged
    min_served: int = 100  # fewer served rows: PSI is not judged (empty bins inflate it)


@dataclass(frozen=True, kw_only=True)
class Alert:
    rule: str  # "psi" | "auc_drop" | "error_rate"
    subject: str  # the feature, the model, or "serving"
    value: float
    threshold: float
    message: str


def online_auc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float | None:
    """ROC-AUC of ``scores`` against ``labels``; ``None`` with no row or a single class."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels for {p.size} scores")
    positives = int(y.sum())
    if y.size == 0 or positives in (0, y.size):
        return None
    return roc_auc(y, p)


def feature_psi(stats: Sequence[FeatureStats], served: Mapping[str, np.ndarray]) -> dict[str, float]:
    """PSI of each feature's served values (NaN = missing, left out like in training)
    against its training statistics. Features with no training bins (never present in
    training) or no served value are left out."""
    out: dict[str, float] = {}
    for s in stats:
        values = served.get(s.name)
        if values is None or len(s.edges) < 2:
            continue
        column = np.asarray(values, dtype=np.float64)
        if np.isnan(column).all():
            continue
        out[s.name] = psi(s.shares, bin_shares(column, s.edges))
    return out


def features_matrix(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Column arrays (float, ``None`` -> NaN) of ``rows`` (feature name -> value)."""
    return {
        name: np.array([_number(row.get(name)) for row in rows], dtype=np.float64) if rows else np.zeros(0)
        for name in names
    }


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    return float(value)


@dataclass(frozen=True, kw_only=True)
class Skew:
    rows: int  # rows compared
    rows_differing: int  # rows with at least one feature differing
    by_feature: dict[str, int]  # feature -> rows where it differs (only features that do)


def feature_skew(
    served: Mapping[str, np.ndarray], offline: Mapping[str, np.ndarray], names: Sequence[str]
) -> Skew:
    """Rows where a served feature differs from the offline value of the same (key, t):
    both missing is equal; numbers within :data:`SKEW_RTOL` relative are equal."""
    n = len(next(iter(served.values()))) if served else 0
    differing = np.zeros(n, dtype=bool)
    by_feature: dict[str, int] = {}
    for name in names:
        a = np.asarray(served[name], dtype=np.float64)
        b = np.asarray(offline[name], dtype=np.float64)
        both_missing = np.isnan(a) & np.isnan(b)
        close = np.isclose(a, b, rtol=SKEW_RTOL, atol=0.0)
        bad = ~(both_missing | close)
        if bad.any():
            by_feature[name] = int(bad.sum())
            differing |= bad
    return Skew(rows=n, rows_differing=int(differing.sum()), by_feature=by_feature)


def evaluate_alerts(
    *,
    psi_by_feature: Mapping[str, float],
    served: int,
    online: float | None,
    labelled: int,
    reference_auc: float | None,
    requests: int,
    errors: int,
    model: str,
    rules: AlertRules = AlertRules(),
) -> list[Alert]:
    """Every alert the rules raise, in a stable order: PSI per feature (largest first), AUC
    drop, error rate. ``served``: the rows the PSI is over; ``labelled``: the rows the online
    AUC is over."""
    alerts: list[Alert] = []
    for name, value in sorted(psi_by_feature.items(), key=lambda kv: (-kv[1], kv[0])):
        if value > rules.max_psi and served >= rules.min_served:
            alerts.append(
                Alert(
                    rule="psi",
                    subject=name,
                    value=value,
                    threshold=rules.max_psi,
                    message=f"feature {name}: PSI {value:.3f} against the training split "
                    f"(> {rules.max_psi:g}): its served distribution shifted",
                )
            )
    if online is not None and reference_auc is not None and labelled >= rules.min_labelled:
        drop = reference_auc - online
        if drop > rules.max_auc_drop:
            alerts.append(
                Alert(
                    rule="auc_drop",
                    subject=model,
                    value=drop,
                    threshold=rules.max_auc_drop,
                    message=f"model {model}: online AUC {online:.4f} is {drop:.4f} below the test AUC "
                    f"{reference_auc:.4f} (> {rules.max_auc_drop:g}) over {labelled} labelled predictions",
                )
            )
    if requests > 0:
        rate = errors / requests
        if rate > rules.max_error_rate:
            alerts.append(
                Alert(
                    rule="error_rate",
                    subject="serving",
                    value=rate,
                    threshold=rules.max_error_rate,
                    message=f"serving: {errors} of {requests} prediction requests failed "
                    f"({rate:.2%} > {rules.max_error_rate:.0%})",
                )
            )
    return alerts


def percentiles_ms(latencies_s: Sequence[float], qs: Sequence[float] = (50, 99)) -> list[float | None]:
    """Percentiles of latencies given in seconds, in milliseconds (``None`` with none)."""
    if not len(latencies_s):
        return [None for _ in qs]
    values = np.asarray(latencies_s, dtype=np.float64) * 1000.0
    return [float(np.percentile(values, q)) for q in qs]
