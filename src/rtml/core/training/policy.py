"""The promotion policy: does a candidate beat the champion by the margin?

Pure: two numbers measured on the same test rows (training re-scores the champion on the
candidate's test window), the metric's direction and the margin. No registry, no I/O.

A candidate is promoted when its improvement over the champion (``candidate - champion``,
or ``champion - candidate`` for a metric where lower is better) is positive and at least
``margin``. With ``margin`` 0 a strictly better score is enough; a tie keeps the champion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rtml.core.training.report import LOWER_IS_BETTER

# Differences this small are rounding, not a worse model (0.71 - 0.70 < 0.01 in binary).
_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    # How much better the candidate is (positive: better), None without a champion.
    improvement: float | None = None


def improvement(candidate_value: float, champion_value: float, metric: str) -> float:
    """``candidate`` minus ``champion`` in the direction where positive means better."""
    if metric in LOWER_IS_BETTER:
        return champion_value - candidate_value
    return candidate_value - champion_value


def decide(candidate_value: float, champion_value: float | None, metric: str, margin: float) -> Decision:
    """Whether a candidate scoring ``candidate_value`` replaces a champion scoring
    ``champion_value`` (None: there is no champion) on ``metric``."""
    if margin < 0 or not math.isfinite(margin):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    direction = "lower" if metric in LOWER_IS_BETTER else "higher"
    if not math.isfinite(candidate_value):
        return Decision(False, f"the candidate's {metric} is {candidate_value}, not a number to promote on")
    if champion_value is None:
        return Decision(True, f"no champion yet; the candidate's {metric} is {candidate_value:.6g}")
    if not math.isfinite(champion_value):
        return Decision(
            True,
            f"the champion's {metric} is {champion_value}; the candidate's is {candidate_value:.6g}",
        )
    gain = improvement(candidate_value, champion_value, metric)
    versus = f"{metric} {candidate_value:.6g} vs the champion's {champion_value:.6g} ({direction} is better)"
    if gain <= _TOLERANCE:
        what = "ties" if abs(gain) <= _TOLERANCE else "is worse than"
        return Decision(False, f"the candidate {what} the champion: {versus}", gain)
    if gain + _TOLERANCE < margin:
        return Decision(
            False,
            f"the candidate beats the champion by {gain:.6g}, less than the margin {margin:g}: {versus}",
            gain,
        )
    margin_note = f" (margin {margin:g})" if margin else ""
    return Decision(True, f"the candidate beats the champion by {gain:.6g}{margin_note}: {versus}", gain)
