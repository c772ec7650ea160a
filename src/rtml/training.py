"""``rtml train`` in Python: build the training set, split by time, tune, evaluate, register.

:func:`train` refuses a model whose definitions changed since ``rtml apply`` (the stored
features were computed for the old ones), builds the point-in-time training set, splits
it by time with a label-horizon gap (:mod:`rtml.core.training.split`), tunes XGBoost with
the configured trainer, evaluates the best model on the test split, fits a baseline
without the streaming features, and fills a :class:`TrainingReport`. With a registry it
then scores the current champion on the same test rows, logs the run as a new version
and lets the promotion policy decide whether the new version becomes champion.
See docs/training.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtml.backends.registry import open_backend
from rtml.backends.trainer.base import Trainer, TrainingData, TrialProgress, TuneRequest
from rtml.backends.trainer.local import feature_importance, fit, predict, threads_for
from rtml.core.plan import read_applied
from rtml.core.training import metrics
from rtml.core.training.dataset import PreparedSet, prepare
from rtml.core.training.matrix import column_values, dataset_sha256, feature_matrix, input_example
from rtml.core.training.report import ROC_AUC, Lineage, TrainingReport
from rtml.core.training.search import booster_params
from rtml.core.training.stats import feature_stats
from rtml.definitions.model import Model
from rtml.errors import DefinitionError, InvalidInputError
from rtml.project import Project

if TYPE_CHECKING:
    import pyarrow as pa

    from rtml.backends.tracking.base import ModelRegistry, ModelVersion
    from rtml.core.training.settings import PromotionSettings
    from rtml.models import PromotionDecision

APPLIED_STATE = "applied.json"
NO_STREAM_FEATURES_AUC = "no_stream_features_auc"
# The baseline without streaming features: fixed, small trees on the request fields only.
BASELINE_PARAMS: dict[str, Any] = {"max_depth": 3, "learning_rate": 0.1, "n_estimators": 200}

# extra_metrics: fixed numbers, or a function of the test rows' event ids (e.g. an oracle AUC).
ExtraMetrics = Mapping[str, float] | Callable[[Sequence[str]], Mapping[str, float]]


@dataclass
class TrainOutcome:
    report: TrainingReport
    baseline_auc: float  # test ROC-AUC of the model on the request fields only
    baseline_features: list[str]
    test_event_ids: list[str]  # the test rows (event_id, or spine_row for a spine)
    test_scores: np.ndarray  # the new model's scores of those rows
    test_labels: np.ndarray
    version: ModelVersion | None = None  # None when nothing was registered
    decision: PromotionDecision | None = None  # what promotion decided, when registered
    champion_value: float | None = None  # the previous champion's metric on the same test rows
    champion_version: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-able digest: what ``rtml train --json`` prints."""
        return outcome_summary(self)


def train(
    project: Project,
    model_name: str,
    *,
    trials: int | None = None,
    registry: ModelRegistry | None = None,
    register: bool = True,
    trainer: Trainer | None = None,
    progress: TrialProgress | None = None,
    extra_metrics: ExtraMetrics | None = None,
    spine: pa.Table | str | Path | None = None,
) -> TrainOutcome:
    """Train, evaluate and (with a registry) register and maybe promote ``model_name``.

    ``registry`` None opens the configured one when ``register`` (``rtml.yaml``'s
    ``tracking``); ``register=False`` registers nothing. ``trainer`` None opens the
    configured one. ``progress(done, total)`` is called after each tuning trial."""
    started = time.perf_counter()
    model = project.definitions.model(model_name)
    check_applied(project, model)
    settings = project.config.training
    n_trials = settings.trials if trials is None else trials
    if n_trials < 1:
        raise InvalidInputError(f"trials must be at least 1, got {n_trials}")

    own_registry = registry is None and register
    if own_registry:
        from rtml.backends.tracking import open_registry

        registry = open_registry(project)  # before the work: an unreachable registry fails fast
    own_trainer = trainer is None
    tuner: Trainer = open_backend("trainer", project.config.trainer) if trainer is None else trainer
    try:
        table = _training_set(project, model, spine)
        what = f"the training set of model {model.name!r}"
        horizon_ms = int(model.label.horizon_span.total_seconds() * 1000)
        data = prepare(table, model.feature_names, settings, horizon_ms=horizon_ms, what=what)
        result = tuner.tune(
            _training_data(data),
            TuneRequest(
                base_params=model.params,
                search_space=model.search_space,
                metric=model.metric,
                trials=n_trials,
                seed=settings.seed,
                early_stopping_rounds=settings.early_stopping_rounds,
            ),
            progress,
        )
        names = data.feature_names
        x_test, y_test = data.xy("test")
        x_valid, y_valid = data.xy("validation")
        test_scores = predict(result.booster, x_test, names)
        baseline_features = list(model.request_fields)
        baseline_auc = _baseline_auc(project, model, table, data, baseline_features)
        extra = {NO_STREAM_FEATURES_AUC: baseline_auc}
        test_ids = data.ids_of("test")
        if extra_metrics is not None:
            given = extra_metrics(test_ids) if callable(extra_metrics) else extra_metrics
            extra.update({k: float(v) for k, v in given.items()})
        report = TrainingReport(
            model=model.name,
            metric=model.metric,
            feature_names=names,
            params=result.params,
            best_iteration=result.best_iteration,
            booster=result.booster,
            trainer=str(getattr(getattr(tuner, "config", None), "type", "custom")),
            seed=settings.seed,
            train=data.window("train"),
            validation=data.window("validation"),
            test=data.window("test"),
            gap_ms=data.split.gap_ms,
            test_metrics=metrics.evaluate(y_test, test_scores),
            validation_metrics=metrics.evaluate(y_valid, predict(result.booster, x_valid, names)),
            trials=result.trials,
            feature_importance=feature_importance(result.booster, names),
            roc=metrics.roc_curve(y_test, test_scores),
            pr=metrics.pr_curve(y_test, test_scores),
            calibration=metrics.calibration_curve(y_test, test_scores),
            feature_stats=feature_stats(data.xy("train")[0], names),
            lineage=_lineage(table, data, model),
            input_example=input_example(data.xy("train")[0], names),
            train_seconds=result.seconds,
            extra_metrics=extra,
        )
        outcome = TrainOutcome(
            report=report,
            baseline_auc=baseline_auc,
            baseline_features=baseline_features,
            test_event_ids=test_ids,
            test_scores=test_scores,
            test_labels=y_test,
        )
        if registry is not None:
            _register(registry, outcome, table, data, settings.promotion)
        outcome.seconds = time.perf_counter() - started
        return outcome
    finally:
        if own_trainer:
            tuner.close()
        if own_registry and registry is not None:
            registry.close()


def check_applied(project: Project, model: Model) -> None:
    """Refuse a model that was never applied, or whose definitions (its features, their
    sources, its label) changed since the last ``rtml apply``: the stored features were
    computed for what was applied."""
    applied = read_applied(project.data_dir / APPLIED_STATE)
    recorded = applied.get(model.title)
    if recorded is None:
        raise DefinitionError(
            "has not been applied, so its features may not be stored",
            obj=model.title,
            fix="run `rtml apply` (and `rtml backfill`), then train",
        )
    if recorded != model.fingerprint():
        raise DefinitionError(
            "is stale: its definitions (features, their sources or the label) changed since the last "
            "`rtml apply`, so the stored features do not match them",
            obj=model.title,
            fix="run `rtml apply` (and `rtml backfill`) before training",
        )


def _training_set(project: Project, model: Model, spine: pa.Table | str | Path | None) -> pa.Table:
    from rtml.offline import build_training_set

    table = build_training_set(project, model.name, spine)
    if spine is not None and table.num_rows and not _any_stored_match(table, model):
        raise InvalidInputError(
            f"none of the {table.num_rows} spine rows matches a stored event: every feature is empty "
            "or zero and every label 0. Fix: check the spine's keys and times against the stored "
            "events (their time range and key values)"
        )
    return table


def _any_stored_match(table: pa.Table, model: Model) -> bool:
    """True if some spine row sees a stored event: a non-zero view feature or a positive label."""
    if any(v for v in table.column("label").to_pylist()):
        return True
    views = {v.name for v in model.feature_views}
    for name in model.feature_names:
        if name.split("__", 1)[0] in views:
            values = column_values(table, name)
            if np.any(np.nan_to_num(values) != 0):
                return True
    return False


def _training_data(data: PreparedSet, columns: Sequence[int] | None = None) -> TrainingData:
    x_train, y_train = data.xy("train", columns)
    x_valid, y_valid = data.xy("validation", columns)
    names = data.feature_names if columns is None else [data.feature_names[c] for c in columns]
    return TrainingData(names, x_train, y_train, x_valid, y_valid)


def _baseline_auc(
    project: Project, model: Model, table: pa.Table, data: PreparedSet, features: list[str]
) -> float:
    """Test ROC-AUC of fixed-parameter XGBoost on the request fields only (no streaming
    features), same splits. 0.5 when the model has no request field (a constant score)."""
    if not features:
        return 0.5
    x = feature_matrix(table, features)
    rows = {s: data.rows(s) for s in ("train", "validation", "test")}
    baseline = TrainingData(
        features, x[rows["train"]], data.y[rows["train"]], x[rows["validation"]], data.y[rows["validation"]]
    )
    settings = project.config.training
    params, rounds = booster_params(
        {},
        BASELINE_PARAMS,
        metric=ROC_AUC,
        seed=settings.seed,
        n_jobs=threads_for(len(rows["train"]), getattr(project.config.trainer, "n_jobs", None)),
    )
    result = fit(baseline, params, rounds, early_stopping_rounds=settings.early_stopping_rounds)
    return metrics.roc_auc(data.y[rows["test"]], predict(result.raw, x[rows["test"]], features))


def _lineage(table: pa.Table, data: PreparedSet, model: Model) -> Lineage:
    return Lineage(
        first_event_ms=int(data.event_ms.min()),
        last_event_ms=int(data.event_ms.max()),
        rows=table.num_rows,
        positives=int(data.y.sum()),
        dataset_sha256=dataset_sha256(table),
        definitions_fingerprint=model.fingerprint(),
    )


def _register(
    registry: ModelRegistry,
    outcome: TrainOutcome,
    table: pa.Table,
    data: PreparedSet,
    promotion: PromotionSettings,
) -> None:
    """Score the champion on the same test rows, log the run, let the policy promote."""
    from rtml.models import promote_if_better

    report = outcome.report
    champion = registry.alias_version(report.model, promotion.alias)
    outcome.champion_version = champion
    if champion is not None:
        outcome.champion_value = _champion_value(registry, report, champion, table, data, outcome.notes)
    outcome.version = registry.log_run(report)
    outcome.decision = promote_if_better(
        registry,
        outcome.version,
        report.test_metrics[report.metric],
        outcome.champion_value,
        report.metric,
        promotion,
        force=False,
    )


def _champion_value(
    registry: ModelRegistry,
    report: TrainingReport,
    version: str,
    table: pa.Table,
    data: PreparedSet,
    notes: list[str],
) -> float | None:
    loaded = registry.load(report.model, version)
    missing = [n for n in loaded.feature_names if n not in table.column_names]
    if missing:
        notes.append(
            f"champion version {version} needs features the training set lacks ({', '.join(missing)}); "
            "it was not scored"
        )
        return None
    x = feature_matrix(table, loaded.feature_names)[data.rows("test")]
    scores = predict(loaded.booster, x, loaded.feature_names)
    return metrics.evaluate(data.y[data.rows("test")], scores)[report.metric]


def outcome_summary(outcome: TrainOutcome) -> dict[str, Any]:
    report = outcome.report
    decision = outcome.decision
    return {
        "model": report.model,
        "metric": report.metric,
        "rows": report.lineage.rows,
        "positives": report.lineage.positives,
        "splits": {name: vars(getattr(report, name)) for name in ("train", "validation", "test")},
        "gap_ms": report.gap_ms,
        "test": dict(report.test_metrics),
        "validation": dict(report.validation_metrics),
        NO_STREAM_FEATURES_AUC: outcome.baseline_auc,
        "baseline_features": outcome.baseline_features,
        "extra_metrics": dict(report.extra_metrics),
        "trials": len(report.trials),
        "best_params": report.params,
        "best_iteration": report.best_iteration,
        "trainer": report.trainer,
        "dataset_sha256": report.lineage.dataset_sha256,
        "definitions_fingerprint": report.lineage.definitions_fingerprint,
        "model_version": outcome.version.version if outcome.version is not None else None,
        "champion_version_before": outcome.champion_version,
        "champion_value_before": outcome.champion_value,
        "promotion": _decision_dict(decision),
        "notes": list(outcome.notes),
        "train_seconds": report.train_seconds,
        "seconds": outcome.seconds,
    }


def _decision_dict(decision: PromotionDecision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {
        "promoted": decision.promoted,
        "champion": decision.champion,
        "previous": decision.previous,
        "alias": decision.alias,
        "action": decision.action,
        "reason": decision.reason,
        "metric": decision.metric,
        "candidate_value": decision.candidate_value,
        "champion_value": decision.champion_value,
    }
