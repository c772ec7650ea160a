"""The prediction log role: every prediction served, with the exact feature values and the
model version, for joining labels later (online AUC, skew checks, training on what was
served). See docs/serving.md."""

from rtml.backends.prediction_log.base import PREDICTION_COLUMNS, PredictionLog, PredictionRecord

__all__ = ["PREDICTION_COLUMNS", "PredictionLog", "PredictionRecord"]
