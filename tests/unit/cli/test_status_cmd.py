"""`rtml status` on the embedded example project: a fresh project, after the validator and
the engine ran (checkpoint, watermark, exact counts), a definition change (a view to
backfill), a champion, ``rtml up``'s status file of a dead supervisor, and a store that does
not answer (its section says why, the others are shown, exit 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.up_support import produce
from typer.testing import CliRunner

from rtml.apply import apply_project
from rtml.cli.main import app
from rtml.datagen import generate
from rtml.project import Project
from rtml.services.engine import EngineService
from rtml.services.supervisor.supervisor import status_path
from rtml.services.validator import ValidatorService
from rtml.testing import example_project

runner = CliRunner(env={"COLUMNS": "200"})
CLOCK = {"RTML_VALIDATOR__CLOCK": "2019-10-20T00:00:00Z"}


def _status(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["status", "--project", str(root), "--json", *args], env=env)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def test_status_of_a_project_as_it_fills(tmp_path: Path) -> None:
    project = example_project(tmp_path / "shop")
    root = project.root
    code, fresh = _status(root)
    assert code == 0
    assert fresh["project"]["models"] == ["purchase_1h"] and len(fresh["project"]["feature_views"]) == 3
    assert fresh["backends"]["event_log"] == "local" and fresh["backends"]["online_store"] == "sqlite"
    assert fresh["engine"]["checkpoint"] is None and "rtml run engine" in fresh["engine"]["note"]
    assert fresh["models"]["purchase_1h"] == {
        "versions": 0, "champion": None, "test_metrics": {}, "latest": None,
    }  # fmt: skip
    assert fresh["up"]["state"] == "never run"

    project = Project.load(root, environ=CLOCK)
    apply_project(project, dry_run=False)
    generation = generate(3000, seed=5)
    produce(project, generation.lines)
    ValidatorService(project).run(until_idle=True)
    EngineService(project).run(until_idle=True)
    code, ran = _status(root, "--counts", env=CLOCK)
    assert code == 0
    events = ran["events"]
    assert events["valid"] + events["invalid"] + events["duplicates"] == 3000 == events["total"]
    assert (events["valid"], events["invalid"]) == (generation.summary.valid, generation.summary.invalid)
    engine = ran["engine"]
    assert engine["checkpoint"] == "engine:rtml-engine" and engine["built_by"] == "engine"
    assert engine["counts"]["applied"] == events["valid"]
    last_event = max(json.loads(line)["event_time"] for line in generation.lines[-50:])
    assert engine["watermark"] is not None and engine["watermark"][:10] == last_event[:10]
    assert engine["stale_views"] == []

    # A definition change: the stored state of that view is stale (rtml backfill).
    features = root / "features.py"
    features.write_text(features.read_text().replace('windows=["10m", "1h", "1d"], name="views"',
                                                     'windows=["20m", "1h", "1d"], name="views"'))  # fmt: skip
    code, changed = _status(root)
    assert code == 0 and changed["engine"]["stale_views"] == ["user_activity"]


def test_status_names_the_champion_and_a_dead_up(tmp_path: Path) -> None:
    from dataclasses import replace

    from rtml.backends.tracking import open_registry
    from rtml.core.training.report import ROC_AUC
    from rtml.models import promote
    from rtml.testing.registry import make_report

    project = example_project(tmp_path / "shop")
    registry = open_registry(project)
    base = make_report("purchase_1h", seed=1)
    for auc in (0.71, 0.74):
        registry.log_run(replace(base, test_metrics={**base.test_metrics, ROC_AUC: auc}))
    registry.close()
    promote(project, "purchase_1h", "1", force=True)
    path = status_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"state": "running", "pid": 2**22 + 12345, "components": {
        "engine": {"state": "running", "pid": 2**22 + 12346, "restarts": 2, "last_exit": -9},
    }}))  # fmt: skip
    code, found = _status(project.root)
    assert code == 0
    model = found["models"]["purchase_1h"]
    assert (model["versions"], model["champion"], model["latest"]) == (2, "1", "2")
    assert model["test_metrics"]["roc_auc"] == 0.71
    assert found["up"]["state"].startswith("dead")
    assert found["up"]["components"]["engine"] == {"state": "running", "pid": 2**22 + 12346,
                                                  "restarts": 2, "last_exit": -9}  # fmt: skip

    table = runner.invoke(app, ["status", "--project", str(project.root)])
    assert table.exit_code == 0, table.output
    assert "purchase_1h.champion" in table.output and "dead" in table.output


def test_a_store_that_does_not_answer_spoils_only_its_section(tmp_path: Path) -> None:
    project = example_project(tmp_path / "shop")
    env = {"RTML_ONLINE_STORE__TYPE": "redis", "RTML_ONLINE_STORE__URL": "redis://127.0.0.1:1/0",
           "RTML_ONLINE_STORE__CONNECT_TIMEOUT_S": "0.5"}  # fmt: skip
    result = runner.invoke(app, ["status", "--project", str(project.root), "--json"], env=env)
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    assert "127.0.0.1:1" in found["engine"]["error"]
    assert found["backends"]["online_store"] == "redis" and found["models"]["purchase_1h"]["versions"] == 0
    assert "could not read: engine" in result.stderr
