"""rtml's tag names on runs and model versions, shared by every registry backend.

A version carries what listing, promotion and serving need without opening its run: the
test metrics (``rtml.test.<metric>``), the tuning metric, the test window, the feature list
and the definitions fingerprint.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from rtml.core.training.report import TrainingReport

MODEL = "rtml.model"
METRIC = "rtml.metric"
TRAINER = "rtml.trainer"
FINGERPRINT = "rtml.definitions_fingerprint"
TEST_WINDOW = "rtml.test_window"  # "<start_ms>/<end_ms>" of the test split's prediction points
FEATURE_NAMES = "rtml.feature_names"  # JSON list, in the booster's input order
DATASET_SHA256 = "rtml.dataset_sha256"
TEST_METRIC_PREFIX = "rtml.test."
# Written by promotion on a candidate version: how it compared with the champion.
COMPARED_WITH = "rtml.compared_with"  # the champion's version ("" when there was none)
CHAMPION_SCORE = "rtml.champion_score"  # the champion's metric on the candidate's test window
DECISION = "rtml.promotion_decision"  # the policy's reason


def test_window(report: TrainingReport) -> str:
    return f"{report.test.start_ms}/{report.test.end_ms}"


def version_tags(report: TrainingReport) -> dict[str, str]:
    tags = {
        MODEL: report.model,
        METRIC: report.metric,
        TRAINER: report.trainer,
        FINGERPRINT: report.lineage.definitions_fingerprint,
        TEST_WINDOW: test_window(report),
        FEATURE_NAMES: json.dumps(list(report.feature_names)),
        DATASET_SHA256: report.lineage.dataset_sha256,
    }
    for name, value in sorted(report.test_metrics.items()):
        tags[TEST_METRIC_PREFIX + name] = repr(float(value))
    return tags


def metrics_from_tags(tags: Mapping[str, str]) -> dict[str, float]:
    """The ``rtml.test.<metric>`` tags as numbers (unparsable ones are left out)."""
    metrics: dict[str, float] = {}
    for key, text in tags.items():
        if key.startswith(TEST_METRIC_PREFIX):
            try:
                metrics[key[len(TEST_METRIC_PREFIX) :]] = float(text)
            except ValueError:
                continue
    return metrics


def finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
