"""``rtml up`` with the example's ``rtml.scale.yaml``, against the real servers of
scripts/services.sh: Kafka (events, valid topic, dead letters), the schema registry on
PostgreSQL, Redis (online), PostgreSQL (offline), the MLflow server (registry), Ray (the
first model's training), Ray Serve (the server child), OpenSearch (the indexer child) and
the NGINX gateway that scripts/services.sh put in front of RTML_SERVER_PORT.

One story: a first champion is trained on Ray from validated and featured history; ``rtml
up`` starts every component; new events are validated, featured and their dead letters
indexed while it runs; a prediction answers through the services' NGINX (and is refused
without the API key); ``kill -9`` of the engine is repaired; SIGINT stops everything with
exit 0. Then what the run created on the servers is deleted. Takes two to three minutes.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from tests.e2e.test_demo_scale import SEARCH, _environment
from tests.integration.up_support import (
    kill_engine_and_wait,
    produce,
    since_up,
    start_up,
    status,
    stop_and_check,
    wait,
)

from rtml.apply import apply_project
from rtml.datagen import generate
from rtml.demo.scale import write_scale_config
from rtml.demo.scale_cleanup import delete_run
from rtml.project import Project
from rtml.services.engine import EngineService
from rtml.services.supervisor.monitor import Monitor
from rtml.services.supervisor.settings import UpSettings
from rtml.services.validator import ValidatorService
from rtml.services.validator.counts import counts
from rtml.testing import example_project
from rtml.training import train

pytestmark = pytest.mark.integration

MODEL = "purchase_1h"
CLOCK = "2019-10-20T00:00:00Z"  # after the generated stream
FIRST, SECOND = 8_000, 2_000
# The gateway of scripts/services.sh: NGINX on RTML_GATEWAY_PORT in front of RTML_SERVER_PORT,
# with the API key it keeps in $RTML_SERVICES_DIR/nginx/api_key.
SERVER_PORT = int(os.environ.get("RTML_SERVER_PORT", "8000"))
GATEWAY = f"http://127.0.0.1:{os.environ.get('RTML_GATEWAY_PORT', '8080')}"
SERVICES_DIR = Path(os.environ.get("RTML_SERVICES_DIR", Path(__file__).parents[2] / ".services"))


def _scale_project(tmp_path: Path, env: dict[str, str]) -> Project:
    root = example_project(tmp_path / "shop").root
    name = f"up_{uuid.uuid4().hex[:10]}"
    path = write_scale_config(root, name)
    settings = yaml.safe_load(path.read_text())
    settings |= {
        "validator": {"clock": CLOCK, "batch_size": 1000, "poll_timeout": "100ms"},
        "engine": {
            "batch_size": 1000,
            "poll_timeout": "100ms",
            "checkpoint_interval": "1s",
            "exact_for": "40d",
        },
        "server": {"predict": {"poll_interval_s": 1}},
        "training": {"trials": 2},
    }
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return Project.load(root, environ=env)


def _indexed(name: str) -> int:
    httpx.post(f"{SEARCH}/{name}-dead-letters-*/_refresh", timeout=30)
    return int(httpx.get(f"{SEARCH}/{name}-dead-letters-*/_count", timeout=30).json().get("count", 0))


@pytest.mark.timeout(600)  # Ray starts twice (training, serving) on two cores
def test_up_with_the_scale_config_runs_on_the_scale_out_backends(tmp_path: Path) -> None:
    env = _environment()
    project = _scale_project(tmp_path, env)
    name = project.config.project
    assert (project.config.event_log.type, project.config.serving.type) == ("kafka", "ray_serve")
    key = (SERVICES_DIR / "nginx" / "api_key").read_text().strip()
    apply_project(project, dry_run=False)
    lines = generate(FIRST + SECOND, seed=13).lines
    version: tuple[str, str] | None = None
    try:
        # History validated and featured (Kafka -> Redis + PostgreSQL); a champion from Ray.
        produce(project, lines[:FIRST])
        ValidatorService(project).run(until_idle=True)
        EngineService(project).run(until_idle=True)
        before = counts(project)
        outcome = train(project, MODEL)
        assert outcome.version is not None and outcome.report.trainer == "ray"
        version = (MODEL, outcome.version.version)
        # The project's own registered model ("{project}.{model}"): its first version, champion.
        assert outcome.version.version == "1" and outcome.decision and outcome.decision.promoted

        out = tmp_path / "up.out"
        up = start_up(project, out, "--port", str(SERVER_PORT), "--no-retrain", env=env)
        try:
            wait(lambda: status(project).get("pid") == up.pid, 60, "the status file", up)
            assert set(status(project)["components"]) == {
                "validator",
                "engine",
                "indexer",
                "server",
                "monitor",
            }
            url = f"http://127.0.0.1:{SERVER_PORT}"
            wait(lambda: httpx.get(f"{url}/ready", timeout=5).status_code == 200, 240, "Ray Serve ready", up)

            # New events while it runs: validated, featured, the dead letters indexed.
            produce(project, lines[FIRST:])
            wait(lambda: since_up(project, "validator") == SECOND, 90, "the new events validated", up)
            now = counts(project)
            assert now["valid"] + now["invalid"] + now["duplicates"] == FIRST + SECOND
            assert now["invalid"] > before["invalid"]
            added = now["valid"] - before["valid"]
            wait(lambda: since_up(project, "engine") == added, 90, "the new events featured", up)
            wait(lambda: _indexed(name) == now["invalid"], 90, "every dead letter indexed", up)

            # A prediction through the NGINX of scripts/services.sh, to Ray Serve.
            row = {"user_id": 1, "product_id": 1, "price": 10.0}
            refused = httpx.post(f"{GATEWAY}/predict/{MODEL}", json=row, timeout=30)
            assert refused.status_code == 401
            reply = httpx.post(f"{GATEWAY}/predict/{MODEL}", json=row, headers={"X-API-Key": key}, timeout=30)
            assert reply.status_code == 200, reply.text
            assert str(reply.json()["version"]) == outcome.version.version
            page = httpx.get(f"{url}/ui", timeout=30).text
            assert "<td>indexer</td>" in page and "running" in page

            kill_engine_and_wait(project, up)
            stop_and_check(project, up, out)
        finally:
            if up.poll() is None:
                up.kill()
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/health", timeout=2)  # Ray Serve's proxy went with rtml up

        # The monitor's check, over the prediction log the Ray Serve replica wrote.
        checked = Monitor(project, UpSettings()).run_once()["models"][MODEL]
        assert checked["champion"] == outcome.version.version and checked["predictions"] >= 1
    finally:
        results = delete_run(project, version)
    assert not any("failed" in r for r in results), results
