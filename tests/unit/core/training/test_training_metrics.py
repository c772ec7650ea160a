"""rtml's metrics in numpy against scikit-learn's, on random data with and without ties."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve as sk_calibration_curve
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from rtml.core.training import metrics


def _data(seed: int, n: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rng.uniform(0.05, 0.6)).astype(int)
    p = np.clip(0.3 * y + rng.random(n) * 0.7, 0.001, 0.999)
    if ties:
        p = np.round(p, 1)  # many equal scores
    return y, p


CASES = [(seed, n, ties) for seed in range(6) for n in (7, 200, 3000) for ties in (False, True)]


@pytest.mark.parametrize(("seed", "n", "ties"), CASES)
def test_metrics_match_scikit_learn(seed: int, n: int, ties: bool) -> None:
    y, p = _data(seed, n, ties)
    if y.min() == y.max():
        y[0] = 1 - y[0]
    assert metrics.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert metrics.pr_auc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert metrics.log_loss(y, p) == pytest.approx(log_loss(y, p), rel=1e-9)
    observed, predicted = sk_calibration_curve(y, p, n_bins=10, strategy="uniform")
    curve = metrics.calibration_curve(y, p)
    assert curve.x == pytest.approx(list(predicted), abs=1e-12)
    assert curve.y == pytest.approx(list(observed), abs=1e-12)
    counts = np.asarray(curve.counts)
    ece = float(np.sum(counts / n * np.abs(np.asarray(observed) - np.asarray(predicted))))
    assert metrics.calibration_error(y, p) == pytest.approx(ece, abs=1e-12)


def test_roc_curve_matches_scikit_learn_when_short() -> None:
    y, p = _data(3, 150, ties=True)
    fpr, tpr, _ = sk_roc_curve(y, p, drop_intermediate=False)
    curve = metrics.roc_curve(y, p)
    assert curve.x == pytest.approx(list(fpr)) and curve.y == pytest.approx(list(tpr))


def test_curves_are_thinned_and_keep_their_ends() -> None:
    y, p = _data(4, 20_000, ties=False)
    roc = metrics.roc_curve(y, p)
    assert len(roc.x) <= metrics.CURVE_POINTS
    assert (roc.x[0], roc.y[0], roc.x[-1], roc.y[-1]) == (0.0, 0.0, 1.0, 1.0)
    pr = metrics.pr_curve(y, p)
    assert len(pr.x) <= metrics.CURVE_POINTS and pr.x[-1] == 1.0
    assert pr.y[-1] == pytest.approx(y.mean())


def test_known_values() -> None:
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert metrics.roc_auc([0, 1], [0.5, 0.5]) == 0.5  # a tie counts half
    assert np.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))
    perfect = metrics.evaluate(np.array([0, 1, 0, 1]), np.array([0.0, 1.0, 0.0, 1.0]))
    assert perfect["roc_auc"] == 1.0 and perfect["pr_auc"] == 1.0 and perfect["calibration_error"] == 0.0
    assert perfect["log_loss"] < 1e-10
    # all scores 0.5 on a 1-in-4 base rate: the one bin is off by 0.25
    assert metrics.calibration_error([1, 0, 0, 0], [0.5] * 4) == pytest.approx(0.25)


def test_average_ranks_share_ties() -> None:
    assert list(metrics.average_ranks(np.array([3.0, 1.0, 3.0, 2.0]))) == [3.5, 1.0, 3.5, 2.0]
