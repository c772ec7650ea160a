"""The model registry contract (``rtml.backends.tracking.base``) and promotion on top of it,
on every backend: in memory, MLflow on a local SQLite store, and the MLflow tracking server on
PostgreSQL of ``scripts/services.sh`` (or ``RTML_TEST_MLFLOW_URL``; a server that does not
answer FAILS these tests, never skips them).

Reports come from :func:`rtml.testing.registry.make_report`: real XGBoost boosters trained on
random data. Model names are unique per test (the server is shared).
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from rtml.backends.registry import open_backend
from rtml.backends.tracking import for_project
from rtml.backends.tracking.config import MlflowTrackingConfig
from rtml.backends.tracking.history import AliasChange, RegistryWithHistory
from rtml.core.training.report import ROC_AUC, TrainingReport
from rtml.core.training.settings import PromotionSettings
from rtml.errors import BackendUnavailableError, InvalidInputError
from rtml.models import promote_if_better, promote_version, rollback_alias
from rtml.testing.registry import MemoryModelRegistry, make_report

SERVER = pytest.param("server", marks=pytest.mark.integration)
ALL_BACKENDS = ["memory", "sqlite", SERVER]
MLFLOW_BACKENDS = ["sqlite", SERVER]


@pytest.fixture(scope="session")
def reports() -> list[TrainingReport]:
    return [make_report(seed=seed) for seed in range(3)]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated MLflow SQLite store: creating one takes seconds, copying it does not."""
    data_dir = tmp_path_factory.mktemp("mlflow-template")
    open_backend("tracking", for_project(MlflowTrackingConfig(), project="t", data_dir=data_dir)).close()
    return data_dir / "mlflow.db"


def _open(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> RegistryWithHistory:
    if backend == "memory":
        return MemoryModelRegistry()
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copy(template, tmp_path / "mlflow.db")
        config = for_project(MlflowTrackingConfig(), project="contract", data_dir=tmp_path)
        return open_backend("tracking", config)  # type: ignore[no-any-return]
    url: str = request.getfixturevalue("mlflow_url")
    return open_backend("tracking", MlflowTrackingConfig(tracking_uri=url, experiment="rtml-contract-tests"))  # type: ignore[no-any-return]


@pytest.fixture
def name() -> str:
    return f"m_{uuid.uuid4().hex[:10]}"


def _registry(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> Iterator[RegistryWithHistory]:
    reg = _open(request.param, tmp_path, request)
    yield reg
    reg.close()
    if request.param == "server":  # the server is shared: drop the test's registered model
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=reg.uri, registry_uri=reg.uri)  # type: ignore[attr-defined]
        try:
            client.delete_registered_model(name)
        except Exception:  # noqa: S110 - a test that registered nothing
            pass


@pytest.fixture(params=ALL_BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> Iterator[RegistryWithHistory]:
    yield from _registry(request, tmp_path, name)


@pytest.fixture(params=MLFLOW_BACKENDS)
def mlflow_registry(
    request: pytest.FixtureRequest, tmp_path: Path, name: str
) -> Iterator[RegistryWithHistory]:
    yield from _registry(request, tmp_path, name)


def _as(report: TrainingReport, model: str, **changes: object) -> TrainingReport:
    return replace(report, model=model, **changes)  # type: ignore[arg-type]


def test_log_run_registers_versions_newest_first(
    registry: RegistryWithHistory, reports: list[TrainingReport], name: str
) -> None:
    assert registry.versions(name) == []
    first = registry.log_run(_as(reports[0], name))
    second = registry.log_run(_as(reports[1], name))
    assert (first.version, second.version) == ("1", "2")
    assert first.run_id and second.run_id and first.run_id != second.run_id
    listed = registry.versions(name)
    assert [v.version for v in listed] == ["2", "1"]
    assert listed[0].created_ms >= listed[1].created_ms > 0
    for version, report in zip(listed, [reports[1], reports[0]], strict=True):
        assert version.model == name
        assert version.metrics == pytest.approx(report.test_metrics)
        assert version.tags["rtml.definitions_fingerprint"] == report.lineage.definitions_fingerprint
        assert version.tags["rtml.test_window"] == f"{report.test.start_ms}/{report.test.end_ms}"
        assert json.loads(version.tags["rtml.feature_names"]) == report.feature_names
        assert version.aliases == ()


def test_aliases_point_at_one_version(
    registry: RegistryWithHistory, reports: list[TrainingReport], name: str
) -> None:
    assert registry.alias_version(name, "champion") is None  # no such model yet
    registry.log_run(_as(reports[0], name))
    registry.log_run(_as(reports[1], name))
    assert registry.alias_version(name, "champion") is None
    registry.set_alias(name, "champion", "1")
    registry.set_alias(name, "challenger", "2")
    assert registry.alias_version(name, "champion") == "1"
    registry.set_alias(name, "champion", "2")
    assert registry.alias_version(name, "champion") == "2"
    assert {v.version: v.aliases for v in registry.versions(name)} == {
        "2": ("challenger", "champion"),
        "1": (),
    }
    with pytest.raises(InvalidInputError, match="no version '7'"):
        registry.set_alias(name, "champion", "7")
    assert registry.alias_version(name, "champion") == "2"


def test_load_returns_the_booster_and_its_input_order(
    registry: RegistryWithHistory, reports: list[TrainingReport], name: str
) -> None:
    report = _as(reports[2], name, feature_names=list(reversed(reports[2].feature_names)))
    registry.log_run(_as(reports[0], name))
    version = registry.log_run(report)
    loaded = registry.load(name, version.version)
    assert loaded.booster == report.booster
    assert loaded.feature_names == tuple(report.feature_names)
    assert loaded.definitions_fingerprint == report.lineage.definitions_fingerprint
    assert (loaded.model, loaded.version) == (name, "2")
    booster = xgb.Booster()
    booster.load_model(bytearray(loaded.booster))
    x = np.random.default_rng(0).normal(size=(5, len(report.feature_names)))
    original = xgb.Booster()
    original.load_model(bytearray(report.booster))
    assert np.array_equal(booster.inplace_predict(x), original.inplace_predict(x))
    with pytest.raises(InvalidInputError, match="no version '9'"):
        registry.load(name, "9")


def test_version_tags_and_alias_history(
    registry: RegistryWithHistory, reports: list[TrainingReport], name: str
) -> None:
    registry.log_run(_as(reports[0], name))
    registry.set_version_tags(name, "1", {"rtml.compared_with": "", "note": "first"})
    assert registry.versions(name)[0].tags["note"] == "first"
    assert registry.alias_history(name, "champion") == []
    changes = [
        AliasChange(name, "champion", "1", None, "promote", "no champion yet", 1000),
        AliasChange(name, "other", "1", None, "force", "by hand", 1500),
        AliasChange(name, "champion", "1", "1", "rollback", "rolled back", 2000),
    ]
    for change in changes:
        registry.record_alias_change(change)
    assert registry.alias_history(name, "champion") == [changes[0], changes[2]]
    assert registry.alias_history(name, "other") == [changes[1]]


def test_promotion_policy_and_rollback(
    registry: RegistryWithHistory, reports: list[TrainingReport], name: str
) -> None:
    settings = PromotionSettings(margin=0.01)
    v1 = registry.log_run(_as(reports[0], name))
    first = promote_if_better(registry, v1, 0.70, None, ROC_AUC, settings)
    assert first.promoted and first.previous is None and "no champion" in first.reason
    v2 = registry.log_run(_as(reports[1], name))
    small = promote_if_better(registry, v2, 0.705, 0.70, ROC_AUC, settings)
    assert not small.promoted and "less than the margin" in small.reason
    assert registry.alias_version(name, "champion") == "1"
    v3 = registry.log_run(_as(reports[2], name))
    better = promote_if_better(registry, v3, 0.75, 0.70, ROC_AUC, settings)
    assert better.promoted and better.previous == "1" and better.champion == "3"
    assert registry.alias_version(name, "champion") == "3"
    tags = {v.version: v.tags for v in registry.versions(name)}
    assert tags["3"]["rtml.compared_with"] == "1" and float(tags["3"]["rtml.champion_score"]) == 0.70
    assert "less than the margin" in tags["2"]["rtml.promotion_decision"]

    forced = promote_version(registry, name, "2", settings, force=True)
    assert forced.promoted and forced.action == "force"
    assert registry.alias_version(name, "champion") == "2"
    back = rollback_alias(registry, name)
    assert (back.version, back.previous) == ("3", "2")
    again = rollback_alias(registry, name)
    assert (again.version, again.previous) == ("1", "3")
    assert registry.alias_version(name, "champion") == "1"
    with pytest.raises(InvalidInputError, match="first champion"):
        rollback_alias(registry, name)
    actions = [(c.action, c.previous, c.version) for c in registry.alias_history(name, "champion")]
    assert actions == [
        ("promote", None, "1"),
        ("promote", "1", "3"),
        ("force", "3", "2"),
        ("rollback", "2", "3"),
        ("rollback", "3", "1"),
    ]


def test_manual_promotion_compares_only_the_same_test_window(
    registry: RegistryWithHistory, reports: list[TrainingReport], name: str
) -> None:
    settings = PromotionSettings()
    low = {**reports[0].test_metrics, ROC_AUC: 0.6}
    high = {**reports[0].test_metrics, ROC_AUC: 0.8}
    registry.log_run(_as(reports[0], name, test_metrics=low))
    registry.set_alias(name, "champion", "1")
    registry.log_run(_as(reports[0], name, test_metrics=high))  # same test window as v1
    moved_window = replace(reports[0].test, start_ms=reports[0].test.start_ms + 60_000)
    registry.log_run(_as(reports[0], name, test_metrics=high, test=moved_window))
    refused = promote_version(registry, name, "3", settings)
    assert not refused.promoted and "different windows" in refused.reason
    assert registry.alias_version(name, "champion") == "1"
    worse = promote_version(registry, name, "1", settings)
    assert worse.action == "none" and "already" in worse.reason
    ok = promote_version(registry, name, "2", settings)
    assert (
        ok.promoted and ok.champion_value == pytest.approx(0.6) and ok.candidate_value == pytest.approx(0.8)
    )
    assert not promote_version(registry, name, "1", settings).promoted  # 0.6 does not beat 0.8
    assert registry.alias_version(name, "champion") == "2"


def test_a_failed_history_record_puts_the_champion_back(reports: list[TrainingReport], name: str) -> None:
    class Failing(MemoryModelRegistry):
        def record_alias_change(self, change: AliasChange) -> None:
            raise BackendUnavailableError("history store down")

    registry = Failing()
    v1 = registry.log_run(_as(reports[0], name))
    registry.set_alias(name, "champion", v1.version)
    v2 = registry.log_run(_as(reports[1], name))
    with pytest.raises(BackendUnavailableError):
        promote_if_better(registry, v2, 0.9, 0.5, ROC_AUC, PromotionSettings())
    assert registry.alias_version(name, "champion") == "1"


# -- MLflow only -------------------------------------------------------------------------------
def test_mlflow_run_holds_params_metrics_artifacts_and_the_model(
    mlflow_registry: RegistryWithHistory, reports: list[TrainingReport], name: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient
    from mlflow.models import Model

    report = _as(reports[0], name, extra_metrics={"oracle_auc": 0.91})
    version = mlflow_registry.log_run(report)
    client = MlflowClient(tracking_uri=mlflow_registry.uri, registry_uri=mlflow_registry.uri)  # type: ignore[attr-defined]
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["max_depth"] == "3" and run.data.params["rtml.trainer"] == "local"
    assert run.data.params["rtml.seed"] == "0" and run.data.params["rtml.trials"] == "1"
    assert run.data.metrics["test_roc_auc"] == pytest.approx(report.test_metrics[ROC_AUC])
    assert run.data.metrics["validation_log_loss"] == pytest.approx(report.validation_metrics["log_loss"])
    assert run.data.metrics["oracle_auc"] == pytest.approx(0.91)
    assert run.data.metrics["test_rows"] == report.test.rows
    assert run.data.tags["rtml.definitions_fingerprint"] == report.lineage.definitions_fingerprint
    files = {a.path for a in client.list_artifacts(version.run_id)}
    expected = {"feature_importance.png", "roc.png", "pr.png", "calibration.png", "feature_stats.json"}
    assert expected | {"features.json", "lineage.json", "trials.json", "model"} <= files
    (tmp_path / "download").mkdir()
    local = Path(client.download_artifacts(version.run_id, "", str(tmp_path / "download")))
    for png in ("feature_importance.png", "roc.png", "pr.png", "calibration.png"):
        assert (local / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lineage = json.loads((local / "lineage.json").read_text())
    assert lineage["dataset_sha256"] == report.lineage.dataset_sha256
    assert lineage["splits"]["test"]["rows"] == report.test.rows
    assert json.loads((local / "features.json").read_text())["feature_names"] == report.feature_names
    stats = json.loads((local / "feature_stats.json").read_text())
    assert [s["name"] for s in stats] == report.feature_names
    mlmodel = Model.load(str(local / "model"))
    assert mlmodel.signature.inputs.input_names() == report.feature_names
    assert (local / "model" / "input_example.json").exists()
    assert (local / "model" / "model.ubj").read_bytes() == report.booster
    registered = client.get_model_version(name, version.version)
    assert registered.run_id == version.run_id


def test_unreachable_server_fails_fast_with_a_fix() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        BackendUnavailableError, match=r"unreachable.*Fix: start it \(scripts/services.sh start mlflow\)"
    ):
        open_backend("tracking", MlflowTrackingConfig(tracking_uri=f"http://127.0.0.1:{port}", timeout_s=2))


@pytest.mark.integration
def test_server_going_away_leaves_the_champion_untouched(
    mlflow_url: str, reports: list[TrainingReport], name: str
) -> None:
    proxy = _Proxy(mlflow_url)
    direct = open_backend(
        "tracking", MlflowTrackingConfig(tracking_uri=mlflow_url, experiment="rtml-contract-tests")
    )
    try:
        through = open_backend(
            "tracking",
            MlflowTrackingConfig(tracking_uri=proxy.url, experiment="rtml-contract-tests", timeout_s=2),
        )
        v1 = through.log_run(_as(reports[0], name))
        assert promote_if_better(through, v1, 0.7, None, ROC_AUC, PromotionSettings()).promoted
        v2 = direct.log_run(_as(reports[1], name))
        proxy.close()
        with pytest.raises(BackendUnavailableError, match=f"MLflow tracking server at {proxy.url}"):
            promote_if_better(through, v2, 0.9, 0.7, ROC_AUC, PromotionSettings())
        assert direct.alias_version(name, "champion") == "1"
        assert [c.version for c in direct.alias_history(name, "champion")] == ["1"]
    finally:
        proxy.close()
        direct.close()


class _Proxy:
    """A TCP relay to the tracking server that can be cut, to take the server away mid-test."""

    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("http://").split(":")
        self._target = (host, int(port))
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed.set()
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._server.close()
        for s in self._sockets:
            s.close()


def test_memory_registries_with_one_name_share_their_data(reports: list[TrainingReport], name: str) -> None:
    trainer_side, server_side = MemoryModelRegistry(name=name), MemoryModelRegistry(name=name)
    version = trainer_side.log_run(_as(reports[0], name))
    trainer_side.set_alias(name, "champion", version.version)
    assert server_side.alias_version(name, "champion") == "1"
    assert server_side.load(name, "1").booster == reports[0].booster
    assert MemoryModelRegistry().versions(name) == []


@pytest.mark.parametrize("backend", MLFLOW_BACKENDS)
def test_registered_model_name_template_keeps_projects_apart(
    backend: str, reports: list[TrainingReport], name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two projects with the same rtml model name on one store: with "{project}.{model}" each
    has its own registered model, versions and champion; rtml still says ``name``."""
    from mlflow import MlflowClient

    if backend == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), tmp_path / "mlflow.db")
        base = for_project(MlflowTrackingConfig(), project="shared", data_dir=tmp_path)
    else:
        base = MlflowTrackingConfig(tracking_uri=request.getfixturevalue("mlflow_url"))
    template = base.model_copy(update={"registered_model_name": "{project}.{model}"})
    projects = [f"p{i}_{uuid.uuid4().hex[:6]}" for i in range(2)]
    regs = [open_backend("tracking", for_project(template, project=p, data_dir=tmp_path)) for p in projects]
    client = MlflowClient(tracking_uri=base.tracking_uri, registry_uri=base.tracking_uri)
    try:
        a = regs[0].log_run(_as(reports[0], name))
        regs[0].log_run(_as(reports[1], name))
        b = regs[1].log_run(_as(reports[2], name))
        assert (a.version, b.version) == ("1", "1")  # each project's own numbering
        promote_version(regs[0], name, "2", PromotionSettings(), force=True)
        promote_version(regs[1], name, "1", PromotionSettings(), force=True)
        assert regs[0].alias_version(name, "champion") == "2"
        assert regs[1].alias_version(name, "champion") == "1"
        assert [v.model for v in regs[0].versions(name)] == [name, name]
        assert regs[1].load(name, "1").model == name
        assert len(regs[1].alias_history(name, "champion")) == 1
        # In MLflow: the project-prefixed names, nothing under the bare name.
        for project, count in zip(projects, (2, 1), strict=True):
            assert len(client.search_model_versions(f"name = '{project}.{name}'")) == count
        assert client.search_model_versions(f"name = '{name}'") == []
    finally:
        for reg, project in zip(regs, projects, strict=True):
            reg.close()
            try:
                client.delete_registered_model(f"{project}.{name}")
            except Exception:  # noqa: S110 - nothing registered
                pass


@pytest.mark.parametrize("bad", ["model", "{project}", "{model}.{stage}", "{model"])
def test_a_bad_registered_model_name_template_is_refused(bad: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="registered model name template"):
        MlflowTrackingConfig(registered_model_name=bad)
