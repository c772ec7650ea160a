"""The promotion policy (rtml.core.training.policy): direction per metric, margin, ties."""

from __future__ import annotations

import math

import pytest

from rtml.core.training.policy import decide, improvement
from rtml.core.training.report import CALIBRATION_ERROR, LOG_LOSS, PR_AUC, ROC_AUC


@pytest.mark.parametrize(
    ("candidate", "champion", "metric", "margin", "promote", "words"),
    [
        (0.70, None, ROC_AUC, 0.0, True, "no champion"),
        (0.70, None, LOG_LOSS, 0.5, True, "no champion"),
        (0.71, 0.70, ROC_AUC, 0.0, True, "beats the champion by 0.01"),
        (0.70, 0.70, ROC_AUC, 0.0, False, "ties"),
        (0.69, 0.70, ROC_AUC, 0.0, False, "worse"),
        (0.705, 0.70, ROC_AUC, 0.01, False, "less than the margin 0.01"),
        (
            0.71,
            0.70,
            ROC_AUC,
            0.01,
            True,
            "(margin 0.01)",
        ),  # exactly the margin (0.71 - 0.70 < 0.01 in binary)
        (0.72, 0.70, PR_AUC, 0.01, True, "beats"),
        (0.40, 0.45, LOG_LOSS, 0.0, True, "lower is better"),
        (0.45, 0.40, LOG_LOSS, 0.0, False, "worse"),
        (0.44, 0.45, LOG_LOSS, 0.02, False, "less than the margin"),
        (0.03, 0.05, CALIBRATION_ERROR, 0.01, True, "beats the champion by 0.02"),
        (0.05, 0.03, CALIBRATION_ERROR, 0.0, False, "worse"),
        (math.nan, 0.70, ROC_AUC, 0.0, False, "not a number"),
        (math.nan, None, ROC_AUC, 0.0, False, "not a number"),
        (0.60, math.nan, ROC_AUC, 0.0, True, "the champion's roc_auc is nan"),
    ],
)
def test_decide(
    candidate: float, champion: float | None, metric: str, margin: float, promote: bool, words: str
) -> None:
    decision = decide(candidate, champion, metric, margin)
    assert decision.promote is promote
    assert words in decision.reason
    if champion is not None and math.isfinite(champion) and math.isfinite(candidate):
        assert decision.improvement == pytest.approx(improvement(candidate, champion, metric))


def test_improvement_is_positive_when_better() -> None:
    assert improvement(0.8, 0.7, ROC_AUC) == pytest.approx(0.1)
    assert improvement(0.3, 0.4, LOG_LOSS) == pytest.approx(0.1)
    assert improvement(0.4, 0.3, CALIBRATION_ERROR) == pytest.approx(-0.1)


@pytest.mark.parametrize("margin", [-0.1, math.inf, math.nan])
def test_a_bad_margin_is_refused(margin: float) -> None:
    with pytest.raises(ValueError, match="margin"):
        decide(0.8, 0.7, ROC_AUC, margin)
