"""Training on the e-commerce example: quality against the generator's oracle, the champion
path, the CLI, and every refusal (stale definitions, empty / one-class sets, a spine that
matches nothing, an unreachable registry).

Real pieces throughout: the generator, the validator, the DuckDB offline store, XGBoost,
Optuna, and for the CLI MLflow on a local SQLite file. Tests that exercise promotion use the
in-memory registry of :mod:`rtml.testing.registry` (the port without MLflow); the MLflow
backend has its own contract suite.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner

from rtml.apply import apply_project
from rtml.cli.train_cmd import register
from rtml.core.training import metrics
from rtml.core.training.report import ROC_AUC
from rtml.datagen import generate
from rtml.errors import BackendUnavailableError, DefinitionError, InvalidInputError, RtmlError
from rtml.offline import load_events
from rtml.project import Project, init_project
from rtml.testing.registry import MemoryModelRegistry, make_report
from rtml.training import NO_STREAM_FEATURES_AUC, TrainOutcome, train

MODEL = "purchase_1h"
EVENTS = 100_000  # about 8,800 cart events: ~5,700 to train on, ~1,760 to test
SEED = 3
TRIALS = 6
# One thread, and no server: the project's own files only (RTML_* read from this mapping).
ENV = {"RTML_TRAINER__N_JOBS": "1", "RTML_EVENT_LOG__TYPE": "local"}


@dataclass
class Trained:
    project: Project
    truth: dict[str, float]  # event_id -> the planted purchase probability
    registry: MemoryModelRegistry
    outcome: TrainOutcome


def _project(root: Path, lines: list[bytes] | None, *, apply: bool = True) -> Project:
    init_project(root, force=True)
    project = Project.load(root, environ=ENV)
    if apply:
        apply_project(project, dry_run=False)
    if lines is not None:
        load_events(project, lines)
    return project


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    generation = generate(EVENTS, seed=SEED)
    project = _project(tmp_path_factory.mktemp("quality") / "shop", generation.lines)
    registry = MemoryModelRegistry()
    truth = {row.event_id: row.probability for row in generation.truth}
    outcome = train(project, MODEL, trials=TRIALS, registry=registry)
    yield Trained(project, truth, registry, outcome)


def test_test_auc_reaches_95_percent_of_the_oracle(trained: Trained) -> None:
    outcome = trained.outcome
    ids = outcome.test_event_ids
    known = np.array([i in trained.truth for i in ids])
    assert known.mean() > 0.98  # the test rows are the generator's cart events
    oracle = np.array([trained.truth.get(i, 0.0) for i in ids])
    y = outcome.test_labels
    oracle_auc = metrics.roc_auc(y[known], oracle[known])
    model_auc = metrics.roc_auc(y[known], outcome.test_scores[known])
    print(
        f"test ROC-AUC {model_auc:.4f}, oracle {oracle_auc:.4f}, without streaming features "
        f"{outcome.baseline_auc:.4f}"
    )
    assert oracle_auc > 0.7  # the planted signal is there to be found
    assert model_auc >= 0.95 * oracle_auc
    assert outcome.report.test_metrics[ROC_AUC] == pytest.approx(metrics.roc_auc(y, outcome.test_scores))
    # the request fields alone (price) carry little of the signal
    assert outcome.baseline_features == ["price"]
    assert outcome.baseline_auc < model_auc - 0.1
    assert outcome.report.extra_metrics[NO_STREAM_FEATURES_AUC] == outcome.baseline_auc


def test_the_report_describes_the_run(trained: Trained) -> None:
    report = trained.outcome.report
    model = trained.project.definitions.model(MODEL)
    assert report.feature_names == model.feature_names
    assert report.lineage.definitions_fingerprint == model.fingerprint()
    assert len(report.lineage.dataset_sha256) == 64
    assert report.gap_ms == 3_600_000
    assert report.train.end_ms + report.gap_ms < report.validation.start_ms
    assert report.validation.end_ms + report.gap_ms < report.test.start_ms
    rows = report.train.rows + report.validation.rows + report.test.rows
    assert rows <= report.lineage.rows and report.test.rows == len(trained.outcome.test_event_ids)
    assert report.test.positives == int(trained.outcome.test_labels.sum())
    assert len(report.trials) == TRIALS and report.trainer == "local"
    assert report.params["nthread"] == 1 and report.params["tree_method"] == "hist"
    assert [s.name for s in report.feature_stats] == model.feature_names
    assert all(abs(sum(s.shares) - 1) < 1e-9 for s in report.feature_stats if s.count)
    assert set(report.feature_importance) == set(model.feature_names)
    assert report.roc.x[0] == 0.0 and report.roc.y[-1] == 1.0 and report.calibration.counts
    assert report.input_example and set(report.input_example[0]) == set(model.feature_names)


def test_the_first_version_becomes_champion_and_a_retrain_on_the_same_data_does_not(trained: Trained) -> None:
    first = trained.outcome
    assert first.version is not None and first.version.version == "1"
    assert first.decision is not None and first.decision.promoted
    assert trained.registry.alias_version(MODEL, "champion") == "1"
    again = train(trained.project, MODEL, trials=TRIALS, registry=trained.registry)
    # same data, same seed: the same model; the champion is scored on the same test rows
    assert again.report.booster == first.report.booster
    assert again.champion_version == "1"
    assert again.champion_value == pytest.approx(first.report.test_metrics[ROC_AUC], abs=1e-12)
    assert again.version is not None and again.version.version == "2"
    assert again.decision is not None and not again.decision.promoted and "ties" in again.decision.reason
    assert trained.registry.alias_version(MODEL, "champion") == "1"


def test_cli_prints_json_and_a_table(trained: Trained) -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # a group, as in rtml's own app
        pass

    runner = CliRunner(env={"COLUMNS": "200", **ENV})
    root = str(trained.project.root)
    result = runner.invoke(
        app, ["train", "-m", MODEL, "--trials", "2", "--json", "--no-register", "-p", root]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["model"] == MODEL and summary["trials"] == 2 and summary["model_version"] is None
    assert summary["rows"] == trained.outcome.report.lineage.rows
    assert set(summary["test"]) == {"roc_auc", "pr_auc", "log_loss", "calibration_error"}
    assert summary[NO_STREAM_FEATURES_AUC] == pytest.approx(trained.outcome.baseline_auc)
    # with the configured registry: MLflow on a local SQLite file in the project's data dir
    result = runner.invoke(app, ["train", "-m", MODEL, "--trials", "2", "-p", root])
    assert result.exit_code == 0, result.output
    for words in ("train split", "test roc_auc", "without streaming features", "version 1", "champion"):
        assert words in result.output
    assert (trained.project.data_dir / "mlflow.db").is_file()


# -- refusals ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small() -> list[bytes]:
    return generate(6000, seed=5, dirty_rate=0.0).lines


def _without(lines: list[bytes], *kinds: str) -> list[bytes]:
    return [line for line in lines if not any(f'"event_type":"{k}"'.encode() in line for k in kinds)]


def test_a_model_never_applied_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", None, apply=False)
    with pytest.raises(
        DefinitionError, match="has not been applied.*Fix: run `rtml apply` \\(and `rtml backfill`\\)"
    ):
        train(project, MODEL, register=False)


def test_a_model_whose_features_changed_since_apply_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", None)
    features = project.root / "features.py"
    features.write_text(features.read_text().replace('windows=["10m", "1h", "1d"]', 'windows=["10m", "2h"]'))
    changed = Project.load(project.root, environ=ENV)
    registry = MemoryModelRegistry()
    with pytest.raises(DefinitionError, match="is stale.*run `rtml apply` \\(and `rtml backfill`\\)"):
        train(changed, MODEL, registry=registry)
    assert registry.versions(MODEL) == []
    apply_project(changed, dry_run=False)  # once applied, the check passes (and the empty store speaks)
    with pytest.raises(RtmlError, match="load events first"):
        train(changed, MODEL, register=False)


def test_an_empty_training_set_is_refused(tmp_path: Path, small: list[bytes]) -> None:
    project = _project(tmp_path / "p", _without(small, "cart"))
    with pytest.raises(InvalidInputError, match="is empty.*Fix: generate/replay more events"):
        train(project, MODEL, register=False)


def test_a_one_class_training_set_is_refused_and_the_champion_stays(
    tmp_path: Path, small: list[bytes]
) -> None:
    project = _project(tmp_path / "p", _without(small, "purchase"))
    registry = MemoryModelRegistry()
    champion = registry.log_run(make_report(MODEL))
    registry.set_alias(MODEL, "champion", champion.version)
    with pytest.raises(InvalidInputError, match="one class only: all \\d+ labels are negative"):
        train(project, MODEL, registry=registry)
    assert registry.alias_version(MODEL, "champion") == champion.version
    assert len(registry.versions(MODEL)) == 1


def test_a_spine_that_matches_no_event_is_refused(tmp_path: Path, small: list[bytes]) -> None:
    project = _project(tmp_path / "p", small)
    spine = pa.table(
        {
            "user_id": pa.array([10**12 + i for i in range(50)], pa.int64()),
            "product_id": pa.array([10**12] * 50, pa.int64()),
            "ts_ms": pa.array([1_570_000_000_000 + i * 60_000 for i in range(50)], pa.int64()),
        }
    )
    with pytest.raises(InvalidInputError, match="none of the 50 spine rows matches a stored event"):
        train(project, MODEL, register=False, spine=spine)


def test_an_unreachable_registry_stops_before_training(tmp_path: Path, small: list[bytes]) -> None:
    project = _project(tmp_path / "p", small)
    far = Project.load(
        project.root,
        environ={**ENV, "RTML_TRACKING__TRACKING_URI": "http://127.0.0.1:9", "RTML_TRACKING__TIMEOUT_S": "2"},
    )
    with pytest.raises(BackendUnavailableError, match="unreachable"):
        train(far, MODEL)
