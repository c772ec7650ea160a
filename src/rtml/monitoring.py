"""Monitoring a served model: its prediction log joined to the labels that arrived later.

* :func:`read_predictions` -- the prediction log of a model (``server.predict.log``: the
  Parquet files under ``<data_dir>/predictions`` or the PostgreSQL table), optionally from
  a time on;
* :func:`label_predictions` -- for each logged row, the label and the offline
  point-in-time features of the same (keys, time), from the offline store's events: the
  model's own training-set query (:func:`rtml.offline.build_training_set`) with the log as
  its spine. A row whose label horizon has not passed yet (no stored event after
  ``t + horizon``) gets no label;
* :func:`monitor` -- online AUC, PSI per feature against the training split's statistics,
  training/serving skew and the alerts (:mod:`rtml.core.monitoring`).

The offline store must not be held by a writer in another process (DuckDB's lock): call
these after the engine stopped, or on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtml.backends.offline_store import OfflineStore
from rtml.backends.prediction_log.factory import open_prediction_log, resolve_config
from rtml.core.monitoring import (
    Alert,
    AlertRules,
    Skew,
    evaluate_alerts,
    feature_psi,
    feature_skew,
    features_matrix,
    online_auc,
)
from rtml.core.pit import LABEL, SPINE_ROW, TS_MS
from rtml.core.training.report import FeatureStats
from rtml.offline import build_training_set, training_plan
from rtml.project import Project


def read_predictions(project: Project, model: str, *, since_ms: int | None = None) -> pa.Table:
    """The logged predictions of ``model`` (oldest first), those with ``ts >= since_ms``."""
    config = resolve_config(
        project.config.server.predict.log.backend,
        offline_store=project.config.offline_store,
        data_dir=project.data_dir,
    )
    log = open_prediction_log(config)
    try:
        table = log.read(model)
    finally:
        log.close()
    if since_ms is not None and table.num_rows:
        ts = pc.cast(table.column("ts"), pa.int64())
        table = table.filter(pc.greater_equal(ts, since_ms))
    return table


@dataclass(frozen=True, kw_only=True)
class LabelledPredictions:
    """Logged predictions with what the offline store says about them, row by row."""

    model: str
    feature_names: list[str]
    request_ids: list[str]
    ts_ms: np.ndarray
    scores: np.ndarray
    labels: np.ndarray  # float: 1.0, 0.0, or NaN while the horizon has not passed
    served: dict[str, np.ndarray]  # feature -> values as served (NaN: missing)
    offline: dict[str, np.ndarray]  # feature -> offline point-in-time values

    @property
    def rows(self) -> int:
        return len(self.request_ids)

    @property
    def labelled(self) -> np.ndarray:
        """Mask of the rows whose label is known."""
        return ~np.isnan(self.labels)


def label_predictions(
    project: Project, model: str, predictions: pa.Table, *, store: OfflineStore | None = None
) -> LabelledPredictions:
    """Join ``predictions`` (a :func:`read_predictions` table) to their labels and offline
    features, by the label's join keys and the row's time."""
    plan = training_plan(project, model)
    names = list(plan.feature_names)
    keys = [json.loads(k) for k in predictions.column("keys").to_pylist()]
    requests = [json.loads(r) for r in predictions.column("request").to_pylist()]
    served_rows = [json.loads(f) for f in predictions.column("features").to_pylist()]
    ts_ms = np.asarray(pc.cast(predictions.column("ts"), pa.int64()).to_numpy(), dtype=np.int64)
    spine: dict[str, list[object]] = {key: [k.get(key) for k in keys] for key in plan.label.keys}
    spine[TS_MS] = ts_ms.tolist()
    for name in plan.request:
        spine[name] = [r.get(name) for r in requests]
    labels = np.full(len(keys), np.nan)
    offline: dict[str, np.ndarray] = {name: np.full(len(keys), np.nan) for name in names}
    if keys:
        table = build_training_set(project, model, pa.table(spine), include_incomplete=True, store=store)
        rows = np.asarray(table.column(SPINE_ROW).to_numpy(), dtype=np.int64)
        got = table.column(LABEL).to_pylist()
        labels[rows] = [np.nan if v is None else float(v) for v in got]
        for name in names:
            values = table.column(name).to_pylist()
            offline[name][rows] = [np.nan if v is None else float(v) for v in values]
    scores = predictions.column("score").to_numpy(zero_copy_only=False)
    return LabelledPredictions(
        model=model,
        feature_names=names,
        request_ids=predictions.column("request_id").to_pylist(),
        ts_ms=ts_ms,
        scores=np.asarray(scores, dtype=np.float64),
        labels=labels,
        served=features_matrix(served_rows, names),
        offline=offline,
    )


@dataclass(frozen=True, kw_only=True)
class MonitoringReport:
    model: str
    predictions: int  # logged rows considered
    labelled: int  # of which the label is known (horizon passed)
    positives: int
    online_auc: float | None
    reference_auc: float | None  # what the online AUC is held against (the test AUC)
    psi: dict[str, float]  # feature -> PSI against the training split
    skew: Skew  # served vs offline point-in-time features, labelled rows
    alerts: list[Alert] = field(default_factory=list)

    @property
    def max_psi(self) -> float | None:
        return max(self.psi.values()) if self.psi else None


def monitor(
    labelled: LabelledPredictions,
    *,
    stats: Sequence[FeatureStats],
    reference_auc: float | None,
    requests: int,
    errors: int,
    rules: AlertRules = AlertRules(),
) -> MonitoringReport:
    """The monitoring numbers and alerts of ``labelled`` predictions. ``stats``: the training
    split's per-feature statistics of the served version (its ``feature_stats.json``)."""
    known = labelled.labelled
    y = labelled.labels[known]
    auc = online_auc(labelled.scores[known], y)
    psi_by_feature = feature_psi(stats, labelled.served)
    skew = feature_skew(
        {k: v[known] for k, v in labelled.served.items()},
        {k: v[known] for k, v in labelled.offline.items()},
        labelled.feature_names,
    )
    alerts = evaluate_alerts(
        psi_by_feature=psi_by_feature,
        served=labelled.rows,
        online=auc,
        labelled=int(known.sum()),
        reference_auc=reference_auc,
        requests=requests,
        errors=errors,
        model=labelled.model,
        rules=rules,
    )
    return MonitoringReport(
        model=labelled.model,
        predictions=labelled.rows,
        labelled=int(known.sum()),
        positives=int(y.sum()),
        online_auc=auc,
        reference_auc=reference_auc,
        psi=psi_by_feature,
        skew=skew,
        alerts=alerts,
    )
