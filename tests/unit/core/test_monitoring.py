"""rtml.core.monitoring: online AUC, PSI against training stats, skew, alert rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtml.core.monitoring import (
    AlertRules,
    evaluate_alerts,
    feature_psi,
    feature_skew,
    features_matrix,
    online_auc,
    percentiles_ms,
)
from rtml.core.training.metrics import roc_auc
from rtml.core.training.stats import feature_stats, psi


def test_online_auc_ranks_scores_against_labels() -> None:
    assert online_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert online_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert online_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    rng = np.random.default_rng(1)
    y = rng.random(500) < 0.3
    p = rng.random(500) + y * 0.4
    assert online_auc(p, y) == pytest.approx(roc_auc(y, p))


@pytest.mark.parametrize("labels", [[], [1, 1, 1], [0, 0]])
def test_online_auc_is_none_without_both_classes(labels: list[int]) -> None:
    assert online_auc([0.5] * len(labels), labels) is None


def test_online_auc_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 labels for 3 scores"):
        online_auc([0.1, 0.2, 0.3], [0, 1])


def _training(n: int = 5000) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(7)
    x = np.column_stack([rng.normal(0, 1, n), rng.poisson(2.0, n).astype(float), np.full(n, np.nan)])
    return x, ["normal", "count", "never"]


def test_psi_is_zero_on_the_training_values_and_large_on_a_shift() -> None:
    x, names = _training()
    stats = feature_stats(x, names)
    same = feature_psi(stats, {"normal": x[:, 0], "count": x[:, 1], "never": x[:, 2]})
    assert same == pytest.approx({"normal": 0.0, "count": 0.0}, abs=1e-12)  # "never": no bins
    rng = np.random.default_rng(8)
    shifted = feature_psi(stats, {"normal": rng.normal(1.0, 1, 2000), "count": rng.poisson(2.0, 2000) * 1.0})
    assert shifted["normal"] > 0.2  # a one-sigma shift
    assert shifted["count"] < 0.05  # same distribution, another sample


def test_psi_leaves_out_features_not_served_or_all_missing() -> None:
    x, names = _training()
    stats = feature_stats(x, names)
    got = feature_psi(stats, {"normal": np.array([np.nan, np.nan])})
    assert got == {}


def test_psi_uses_the_training_edges_and_missing_values_are_left_out() -> None:
    x, names = _training()
    stats = feature_stats(x, names)
    served = np.concatenate([x[:, 0], np.full(1000, np.nan)])
    assert feature_psi(stats, {"normal": served})["normal"] == pytest.approx(0.0, abs=1e-12)
    lower_half = np.sort(x[:, 0])[:2500]  # only the lower five deciles
    expected = psi(stats[0].shares, [0.2] * 5 + [0.0] * 5)
    assert feature_psi(stats, {"normal": lower_half})["normal"] == pytest.approx(expected, rel=1e-6)


def test_features_matrix_turns_rows_into_float_columns() -> None:
    got = features_matrix([{"a": 1, "b": None}, {"a": 2.5, "b": 3}], ["a", "b"])
    assert got["a"].tolist() == [1.0, 2.5]
    assert math.isnan(got["b"][0]) and got["b"][1] == 3.0


def test_skew_counts_rows_and_features_that_differ() -> None:
    served = {"a": np.array([1.0, 2.0, np.nan, 4.0]), "b": np.array([0.1, 0.2, 0.3, np.nan])}
    offline = {"a": np.array([1.0, 2.0 * (1 + 1e-12), np.nan, 5.0]), "b": np.array([0.1, 0.2, 0.31, 1.0])}
    skew = feature_skew(served, offline, ["a", "b"])
    assert skew.rows == 4
    assert skew.rows_differing == 2  # row 2 (b) and row 3 (a and b); 1e-12 relative is equal
    assert skew.by_feature == {"a": 1, "b": 2}


def test_no_skew_when_everything_matches() -> None:
    values = {"a": np.array([1.0, np.nan])}
    assert feature_skew(values, {"a": values["a"].copy()}, ["a"]).rows_differing == 0


def _alerts(**changes: object) -> list[str]:
    args: dict[str, object] = {
        "psi_by_feature": {"x": 0.05, "y": 0.1},
        "served": 1000,
        "online": 0.80,
        "labelled": 1000,
        "reference_auc": 0.82,
        "requests": 1000,
        "errors": 0,
        "model": "m",
    }
    args.update(changes)
    return [f"{a.rule}:{a.subject}" for a in evaluate_alerts(**args)]  # type: ignore[arg-type]


def test_no_alert_when_everything_is_within_the_rules() -> None:
    assert _alerts() == []


def test_psi_alerts_per_feature_largest_first() -> None:
    assert _alerts(psi_by_feature={"x": 0.25, "y": 0.9, "z": 0.2}) == ["psi:y", "psi:x"]


def test_psi_is_not_judged_on_few_rows() -> None:
    assert _alerts(psi_by_feature={"x": 0.9}, served=50) == []
    assert _alerts(psi_by_feature={"x": 0.9}, served=50, rules=AlertRules(min_served=10)) == ["psi:x"]


def test_auc_drop_alert() -> None:
    assert _alerts(online=0.76) == ["auc_drop:m"]
    assert _alerts(online=0.78) == []  # 0.04 below
    assert _alerts(online=0.76, labelled=20) == []  # too few labels to judge
    assert _alerts(online=None) == []
    assert _alerts(online=0.95) == []  # better than the test AUC is no alert


def test_error_rate_alert() -> None:
    assert _alerts(errors=11) == ["error_rate:serving"]
    assert _alerts(errors=10) == []  # exactly 1%
    assert _alerts(requests=0, errors=0) == []


def test_alert_messages_name_the_numbers() -> None:
    alerts = evaluate_alerts(
        psi_by_feature={"price": 0.31},
        served=500,
        online=0.70,
        labelled=400,
        reference_auc=0.80,
        requests=100,
        errors=5,
        model="purchase_1h",
    )
    text = "\n".join(a.message for a in alerts)
    assert "price: PSI 0.310" in text
    assert "online AUC 0.7000 is 0.1000 below the test AUC 0.8000" in text
    assert "5 of 100 prediction requests failed" in text


def test_percentiles_in_milliseconds() -> None:
    assert percentiles_ms([]) == [None, None]
    p50, p99 = percentiles_ms([0.001 * i for i in range(1, 101)])
    assert p50 == pytest.approx(50.5) and p99 == pytest.approx(99.01)
