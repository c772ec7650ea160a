"""`rtml models list|promote|rollback` through the CLI, on the embedded MLflow store (SQLite)."""

from __future__ import annotations

import json
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rtml.backends.tracking import open_registry
from rtml.cli import models_cmd
from rtml.core.training.report import ROC_AUC
from rtml.errors import BackendUnavailableError, InvalidInputError
from rtml.project import Project, init_project
from rtml.testing.registry import make_report

runner = CliRunner(env={"COLUMNS": "200"})
MODEL = "purchase_1h"  # the example project's model


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("noop")(lambda: None)  # a second command keeps `models` a sub-command
    models_cmd.register(app)
    return app


@pytest.fixture(scope="module")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated MLflow SQLite file for the module: a new one takes seconds to create."""
    root = init_project(tmp_path_factory.mktemp("template") / "shop")
    open_registry(Project.load(root)).close()
    return root / ".rtml" / "mlflow.db"


@pytest.fixture
def project(tmp_path: Path, migrated_store: Path) -> Path:
    """The example project with three registered versions of purchase_1h (ROC AUC 0.70,
    0.65, 0.80 on the same test window), no champion yet."""
    root = init_project(tmp_path / "shop")
    (root / ".rtml").mkdir(exist_ok=True)
    shutil.copy(migrated_store, root / ".rtml" / "mlflow.db")
    base = make_report(MODEL, seed=3)
    registry = open_registry(Project.load(root))
    try:
        for auc in (0.70, 0.65, 0.80):
            registry.log_run(replace(base, test_metrics={**base.test_metrics, ROC_AUC: auc}))
    finally:
        registry.close()
    return root


def _run(project: Path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(_app(), ["models", *args, "--project", str(project)], env=env)


def test_list_shows_versions_newest_first(project: Path) -> None:
    result = _run(project, "list", "--model", MODEL)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.strip().startswith("│")]  # not the header
    assert [row.split("│")[1].strip() for row in rows] == ["3", "2", "1"]
    assert "0.8000" in rows[0] and "0.6500" in rows[1] and "0.7000" in rows[2]
    listed = json.loads(_run(project, "list", "--model", MODEL, "--json").output)
    assert listed["champion"] is None and listed["history"] == []
    assert [v["version"] for v in listed["versions"]] == ["3", "2", "1"]
    assert listed["versions"][0]["metrics"][ROC_AUC] == pytest.approx(0.80)
    empty = _run(project, "list", "--model", "nope")
    assert empty.exit_code == 0 and "no registered version" in empty.output


def test_promote_refuses_a_worse_version_unless_forced_and_rollback_walks_back(project: Path) -> None:
    first = _run(project, "promote", "--model", MODEL, "--version", "1")
    assert first.exit_code == 0, first.output
    assert "champion none -> v1" in first.output and "no champion yet" in first.output

    worse = _run(project, "promote", "--model", MODEL, "--version", "2")
    assert worse.exit_code == 1
    assert "v2 not promoted" in worse.output and "0.65 vs the champion's 0.7" in worse.output
    assert "--force" in worse.output
    assert json.loads(_run(project, "list", "-m", MODEL, "--json").output)["champion"] == "1"

    forced = _run(project, "promote", "--model", MODEL, "--version", "2", "--force")
    assert forced.exit_code == 0 and "champion v1 -> v2 (forced:" in forced.output
    better = _run(project, "promote", "--model", MODEL, "--version", "3")
    assert better.exit_code == 0 and "champion v2 -> v3" in better.output
    same = _run(project, "promote", "--model", MODEL, "--version", "3")
    assert same.exit_code == 0 and "already champion" in same.output

    back = _run(project, "rollback", "--model", MODEL)
    assert back.exit_code == 0 and "champion v3 -> v2 (rollback)" in back.output
    assert _run(project, "rollback", "--model", MODEL).exit_code == 0
    listed = json.loads(_run(project, "list", "-m", MODEL, "--json").output)
    assert listed["champion"] == "1"
    assert [(h["action"], h["version"]) for h in listed["history"]] == [
        ("promote", "1"),
        ("force", "2"),
        ("promote", "3"),
        ("rollback", "2"),
        ("rollback", "1"),
    ]
    table = _run(project, "list", "-m", MODEL).output
    assert "history of champion:" in table and "rolled back from v2 to v1" in table

    last = _run(project, "rollback", "--model", MODEL)
    assert isinstance(last.exception, InvalidInputError) and "first champion" in str(last.exception)
    unknown = _run(project, "promote", "--model", MODEL, "--version", "9")
    assert isinstance(unknown.exception, InvalidInputError) and "no version '9'" in str(unknown.exception)


def test_an_unreachable_tracking_server_is_a_clear_error(project: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"RTML_TRACKING__TRACKING_URI": f"http://127.0.0.1:{port}", "RTML_TRACKING__TIMEOUT_S": "1"}
    result = _run(project, "promote", "--model", MODEL, "--version", "1", env=env)
    assert isinstance(result.exception, BackendUnavailableError)
    assert f"MLflow tracking server at http://127.0.0.1:{port} is unreachable" in str(result.exception)
    assert "scripts/services.sh start mlflow" in str(result.exception)
    # The embedded store was not touched: still no champion there.
    assert json.loads(_run(project, "list", "-m", MODEL, "--json").output)["champion"] is None
