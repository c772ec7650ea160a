"""Metrics of a binary classifier's scores, in numpy (checked against scikit-learn in the tests).

* :func:`roc_auc` -- the rank statistic (Mann-Whitney), tied scores get their mean rank;
* :func:`pr_auc` -- average precision: sum over distinct thresholds of
  ``(recall_k - recall_{k-1}) * precision_k`` (scikit-learn's ``average_precision_score``);
* :func:`log_loss` -- mean negative log-likelihood, scores clipped to ``[eps, 1 - eps]``;
* :func:`calibration_error` -- expected calibration error over 10 equal-width bins of the
  score: ``sum_b n_b / n * |mean score_b - positive rate_b|``.
"""

from __future__ import annotations

import numpy as np

from rtml.core.training.report import CALIBRATION_ERROR, LOG_LOSS, PR_AUC, ROC_AUC, Curve

CALIBRATION_BINS = 10
CURVE_POINTS = 200  # curves are thinned to about this many points for the registry's plots
_EPS = float(np.finfo(np.float64).eps)


def _arrays(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(y).astype(np.float64).ravel()
    scores = np.asarray(p, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels for {scores.size} scores")
    if labels.size == 0:
        raise ValueError("no rows to score")
    return labels, scores


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``; equal values share the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve; NaN if ``y`` holds one class only."""
    labels, scores = _arrays(y, p)
    positives = labels > 0.5
    n_pos = int(positives.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _cumulative(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positives above each distinct threshold (scores descending)."""
    order = np.argsort(-scores, kind="mergesort")
    s = scores[order]
    t = labels[order] > 0.5
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(t)[last].astype(np.float64)
    fp = (last + 1) - tp
    return tp, fp, s[last]


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision; NaN if there is no positive."""
    labels, scores = _arrays(y, p)
    n_pos = float((labels > 0.5).sum())
    if n_pos == 0:
        return float("nan")
    tp, fp, _ = _cumulative(labels, scores)
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    labels, scores = _arrays(y, p)
    q = np.clip(scores, _EPS, 1.0 - _EPS)
    return float(-np.mean(labels * np.log(q) + (1.0 - labels) * np.log1p(-q)))


def _calibration_bins(
    labels: np.ndarray, scores: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: sum of scores, sum of labels, count (bins ``(lo, hi]``, the first closed)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    ids = np.searchsorted(edges[1:-1], np.clip(scores, 0.0, 1.0))
    sums = np.bincount(ids, weights=scores, minlength=bins)
    hits = np.bincount(ids, weights=labels, minlength=bins)
    counts = np.bincount(ids, minlength=bins)
    return sums, hits, counts


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    labels, scores = _arrays(y, p)
    sums, hits, counts = _calibration_bins(labels, scores, bins)
    return float(np.sum(np.abs(sums - hits)) / labels.size)  # |n_b*mean_p - n_b*rate| / n


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Every metric rtml logs, by name."""
    return {
        ROC_AUC: roc_auc(y, p),
        PR_AUC: pr_auc(y, p),
        LOG_LOSS: log_loss(y, p),
        CALIBRATION_ERROR: calibration_error(y, p),
    }


def _thin(*arrays: np.ndarray, points: int = CURVE_POINTS) -> list[list[float]]:
    n = len(arrays[0])
    keep = np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(int)) if n else np.array([], int)
    return [[float(v) for v in a[keep]] for a in arrays]


def roc_curve(y: np.ndarray, p: np.ndarray) -> Curve:
    """False positive rate (x) against true positive rate (y), from (0, 0) to (1, 1)."""
    labels, scores = _arrays(y, p)
    tp, fp, _ = _cumulative(labels, scores)
    n_pos, n_neg = max(tp[-1], 1.0), max(fp[-1], 1.0)
    fpr, tpr = _thin(np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos])
    return Curve(x=fpr, y=tpr)


def pr_curve(y: np.ndarray, p: np.ndarray) -> Curve:
    """Recall (x) against precision (y), thresholds from the highest score down."""
    labels, scores = _arrays(y, p)
    tp, fp, _ = _cumulative(labels, scores)
    recall, precision = _thin(tp / max(tp[-1], 1.0), tp / (tp + fp))
    return Curve(x=recall, y=precision)


def calibration_curve(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> Curve:
    """Per non-empty bin: mean score (x), positive rate (y) and rows (counts)."""
    labels, scores = _arrays(y, p)
    sums, hits, counts = _calibration_bins(labels, scores, bins)
    filled = counts > 0
    return Curve(
        x=[float(v) for v in sums[filled] / counts[filled]],
        y=[float(v) for v in hits[filled] / counts[filled]],
        counts=[int(c) for c in counts[filled]],
    )
