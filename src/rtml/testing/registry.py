"""An in-memory model registry: the tracking port without MLflow, for tests of training,
promotion and serving (and for users testing their own code against the port).

It keeps what the MLflow registry keeps that the port exposes: versions numbered from 1,
aliases, each version's test metrics and rtml tags, the booster bytes and the alias
history. Registries opened with the same ``name`` in one process share their data (a
trainer and a server of one test); ``None``: private.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from rtml.backends.tracking.base import LoadedModel, ModelVersion
from rtml.backends.tracking.history import AliasChange
from rtml.backends.tracking.tags import version_tags
from rtml.core.training.report import TrainingReport
from rtml.errors import InvalidInputError


@dataclass
class _Model:
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    loaded: dict[str, LoadedModel] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    history: list[AliasChange] = field(default_factory=list)


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    models: dict[str, _Model] = field(default_factory=dict)
    runs: dict[str, TrainingReport] = field(default_factory=dict)


_SHARED: dict[str, _State] = {}
_SHARED_LOCK = threading.Lock()


class MemoryModelRegistry:
    def __init__(self, name: str | None = None) -> None:
        if name is None:
            self._state = _State()
        else:
            with _SHARED_LOCK:
                self._state = _SHARED.setdefault(name, _State())

    # -- the port ---------------------------------------------------------------------------
    def log_run(self, report: TrainingReport) -> ModelVersion:
        with self._state.lock:
            entry = self._state.models.setdefault(report.model, _Model())
            number = str(len(entry.versions) + 1)
            run_id = uuid.uuid4().hex
            self._state.runs[run_id] = report
            version = ModelVersion(
                model=report.model,
                version=number,
                run_id=run_id,
                created_ms=time.time_ns() // 1_000_000,
                metrics=dict(report.test_metrics),
                tags=version_tags(report),
            )
            entry.versions[number] = version
            entry.loaded[number] = LoadedModel(
                model=report.model,
                version=number,
                booster=bytes(report.booster),
                feature_names=tuple(report.feature_names),
                definitions_fingerprint=report.lineage.definitions_fingerprint,
            )
            return self._with_aliases(entry, version)

    def versions(self, model: str) -> list[ModelVersion]:
        with self._state.lock:
            entry = self._state.models.get(model)
            if entry is None:
                return []
            ordered = sorted(entry.versions.values(), key=lambda v: int(v.version), reverse=True)
            return [self._with_aliases(entry, v) for v in ordered]

    def alias_version(self, model: str, alias: str) -> str | None:
        with self._state.lock:
            entry = self._state.models.get(model)
            return entry.aliases.get(alias) if entry else None

    def set_alias(self, model: str, alias: str, version: str) -> None:
        with self._state.lock:
            self._entry(model, version).aliases[alias] = version

    def load(self, model: str, version: str) -> LoadedModel:
        with self._state.lock:
            return self._entry(model, version).loaded[version]

    def close(self) -> None:
        pass

    # -- alias history (rtml.backends.tracking.history) -------------------------------------
    def set_version_tags(self, model: str, version: str, tags: Mapping[str, str]) -> None:
        with self._state.lock:
            entry = self._entry(model, version)
            current = entry.versions[version]
            entry.versions[version] = replace(current, tags={**current.tags, **tags})

    def record_alias_change(self, change: AliasChange) -> None:
        with self._state.lock:
            self._entry(change.model, change.version).history.append(change)

    def alias_history(self, model: str, alias: str) -> list[AliasChange]:
        with self._state.lock:
            entry = self._state.models.get(model)
            return [c for c in entry.history if c.alias == alias] if entry else []

    # -- helpers ----------------------------------------------------------------------------
    def report(self, run_id: str) -> TrainingReport:
        """The report a run was logged from (tests inspect what training handed over)."""
        return self._state.runs[run_id]

    def _entry(self, model: str, version: str) -> _Model:
        entry = self._state.models.get(model)
        if entry is None or version not in entry.versions:
            raise InvalidInputError(
                f"model {model!r} has no version {version!r}. Fix: see `rtml models list --model {model}`"
            )
        return entry

    @staticmethod
    def _with_aliases(entry: _Model, version: ModelVersion) -> ModelVersion:
        aliases = tuple(sorted(a for a, v in entry.aliases.items() if v == version.version))
        return replace(version, aliases=aliases)


def make_report(
    model: str = "purchase_1h",
    *,
    seed: int = 0,
    rows: int = 400,
    features: int = 4,
    rounds: int = 8,
    test_start_ms: int = 1_570_000_000_000,
) -> TrainingReport:
    """A small but real :class:`TrainingReport`: an XGBoost model trained on random data with a
    planted signal, its metrics and curves computed with scikit-learn. For tests of anything
    that consumes a report (tracking, promotion, serving) without running rtml's training."""
    import numpy as np
    import xgboost as xgb
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import (
        average_precision_score,
        log_loss,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    from rtml.core.training.report import (
        CALIBRATION_ERROR,
        LOG_LOSS,
        PR_AUC,
        ROC_AUC,
        Curve,
        FeatureStats,
        Lineage,
        TimeWindow,
        Trial,
    )

    rng = np.random.default_rng(seed)
    names = [f"view__f{i}" for i in range(features)]
    x = rng.normal(size=(rows, features))
    x[rng.random(size=x.shape) < 0.05] = np.nan
    y = (np.nan_to_num(x[:, 0]) + 0.5 * rng.normal(size=rows) > 0.3).astype(int)
    cut = rows * 3 // 4
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": seed, "nthread": 1}
    train = xgb.DMatrix(x[:cut], label=y[:cut], feature_names=names)
    booster = xgb.train(params, train, num_boost_round=rounds)
    p = booster.predict(xgb.DMatrix(x[cut:], feature_names=names))
    yt = y[cut:]
    fpr, tpr, _ = roc_curve(yt, p)
    precision, recall, _ = precision_recall_curve(yt, p)
    observed, predicted = calibration_curve(yt, p, n_bins=5)
    counts = np.histogram(p, bins=5, range=(0, 1))[0]
    metrics = {
        ROC_AUC: float(roc_auc_score(yt, p)),
        PR_AUC: float(average_precision_score(yt, p)),
        LOG_LOSS: float(log_loss(yt, p)),
        CALIBRATION_ERROR: float(np.mean(np.abs(observed - predicted))),
    }
    gain = booster.get_score(importance_type="gain")
    stats = []
    for i, name in enumerate(names):
        column = x[:cut, i]
        present = column[~np.isnan(column)]
        edges = [float(e) for e in np.quantile(present, np.linspace(0, 1, 6))]
        shares = [float(s) for s in np.histogram(present, bins=edges)[0] / len(present)]
        stats.append(
            FeatureStats(
                name=name,
                count=int(len(column)),
                nulls=int(np.isnan(column).sum()),
                mean=float(present.mean()),
                std=float(present.std()),
                min=float(present.min()),
                max=float(present.max()),
                edges=edges,
                shares=shares,
            )
        )
    hour = 3_600_000
    positives = int(yt.sum())
    return TrainingReport(
        model=model,
        metric=ROC_AUC,
        feature_names=names,
        params=params,
        best_iteration=rounds - 1,
        booster=bytes(booster.save_raw("ubj")),
        trainer="local",
        seed=seed,
        train=TimeWindow(
            test_start_ms - 10 * hour, test_start_ms - 4 * hour, cut * 4 // 5, int(y[:cut].sum())
        ),
        validation=TimeWindow(test_start_ms - 3 * hour, test_start_ms - 2 * hour, cut // 5, 0),
        test=TimeWindow(test_start_ms, test_start_ms + hour, rows - cut, positives),
        gap_ms=hour,
        test_metrics=metrics,
        validation_metrics=dict(metrics),
        trials=[Trial(number=0, params={"max_depth": 3}, value=metrics[ROC_AUC], best_iteration=rounds - 1)],
        feature_importance={name: float(gain.get(name, 0.0)) for name in names},  # type: ignore[arg-type]
        roc=Curve([float(v) for v in fpr], [float(v) for v in tpr]),
        pr=Curve([float(v) for v in recall], [float(v) for v in precision]),
        calibration=Curve(
            [float(v) for v in predicted], [float(v) for v in observed], [int(c) for c in counts]
        ),
        feature_stats=stats,
        lineage=Lineage(
            first_event_ms=test_start_ms - 11 * hour,
            last_event_ms=test_start_ms + 2 * hour,
            rows=rows,
            positives=int(y.sum()),
            dataset_sha256=f"{seed:064x}",
            definitions_fingerprint=f"fp-{features}",
        ),
        input_example=[
            {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, row, strict=True)} for row in x[:3]
        ],
        train_seconds=0.1,
    )
