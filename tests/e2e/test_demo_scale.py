"""`rtml demo --scale` at a small size against the real servers of scripts/services.sh: every
role on its scale-out backend, the counts add up, the dead letters are searchable in
OpenSearch, a model version is on the MLflow server, predictions went through NGINX and Ray
Serve without error; then the run's cleanup (what --cleanup runs) deletes what it created.

The servers' addresses come from the usual test variables (RTML_TEST_KAFKA, RTML_TEST_PG_URL,
RTML_TEST_REDIS_URL, RTML_TEST_SEARCH, RTML_TEST_MLFLOW_URL, RTML_TEST_NGINX), handed to the
demo as RTML_* overrides. A server that does not answer fails the test. Takes about two
minutes (Ray's start, Ray Serve's deployment).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import redis
from confluent_kafka.admin import AdminClient
from mlflow.tracking import MlflowClient

from rtml.demo.scale import SCALE_BACKENDS
from rtml.demo.scale_cleanup import delete_run
from rtml.project import Project

KAFKA = os.environ.get("RTML_TEST_KAFKA", "127.0.0.1:9092")
PG = os.environ.get("RTML_TEST_PG_URL", "postgresql://rtml:rtml@127.0.0.1:5432/rtml")
REDIS = os.environ.get("RTML_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SEARCH = os.environ.get("RTML_TEST_SEARCH", "http://127.0.0.1:9200").rstrip("/")
MLFLOW = os.environ.get("RTML_TEST_MLFLOW_URL", "http://127.0.0.1:5000").rstrip("/")
MODEL = "purchase_1h"


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTML_")}
    env.update(
        {
            "RTML_EVENT_LOG__BOOTSTRAP_SERVERS": KAFKA,
            "RTML_DEAD_LETTER__BOOTSTRAP_SERVERS": KAFKA,
            "RTML_DEAD_LETTER__INDEX__URL": SEARCH,
            "RTML_SCHEMA_REGISTRY__URL": PG,
            "RTML_OFFLINE_STORE__URL": PG,
            "RTML_ONLINE_STORE__URL": REDIS,
            "RTML_TRACKING__TRACKING_URI": MLFLOW,
        }
    )
    if os.environ.get("RTML_TEST_NGINX"):
        env["RTML_NGINX"] = os.environ["RTML_TEST_NGINX"]
    return env


def _topics(prefix: str) -> list[str]:
    return [
        t
        for t in AdminClient({"bootstrap.servers": KAFKA}).list_topics(timeout=10).topics
        if t.startswith(prefix)
    ]


def test_demo_at_scale_runs_every_role_on_its_scale_out_backend(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    directory = tmp_path / "demo"
    env = _environment()
    command = [sys.executable, "-m", "rtml.cli.main", "demo", "--scale", "--dir", str(directory)]
    command += ["--events", "20000", "--seed", "5", "--trials", "2", "--live-seconds", "5"]
    command += ["--summary", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]

    project = Project.load(directory, environ=env)
    name = project.config.project
    summary = json.loads(out.read_text())
    try:
        # Every role on its scale-out backend, in the summary and in the project's settings.
        assert summary["backends"] == SCALE_BACKENDS
        assert project.config.event_log.type == "kafka" and project.config.serving.type == "ray_serve"
        assert name.startswith("ecommerce_") and name != "ecommerce"
        assert list(summary["stages"]) == [
            "project", "generate", "ingest", "validate", "index", "features", "train", "serve", "live",
            "monitor", "report",
        ]  # fmt: skip

        events = summary["events"]
        assert events["produced"] == 20000
        assert events["valid"] + events["invalid"] + events["duplicates"] == events["produced"]
        assert events["invalid"] > 0 and events["duplicates"] > 0

        # The dead letters: as many in OpenSearch as in the topic, counted here on the server.
        assert summary["dead_letters"] == {"topic": events["invalid"], "indexed": events["invalid"]}
        httpx.post(f"{SEARCH}/{name}-dead-letters-*/_refresh", timeout=30)
        counted = httpx.get(f"{SEARCH}/{name}-dead-letters-*/_count", timeout=30).json()["count"]
        assert counted == events["invalid"]

        # The run's topics are on Kafka, its online state in Redis.
        assert f"{name}.events.raw" in _topics(f"{name}.")
        client = redis.Redis.from_url(REDIS)
        assert next(client.scan_iter(match=f"rtml:{name}:*", count=1000), None) is not None
        client.close()

        # A model version of this run on the MLflow server, in the run's experiment.
        mlflow = MlflowClient(tracking_uri=MLFLOW)
        registered = f"{name}.{MODEL}"  # rtml.scale.yaml: registered_model_name "{project}.{model}"
        version = mlflow.get_model_version(registered, summary["training"]["model_version"])
        run = mlflow.get_run(version.run_id)
        experiment = mlflow.get_experiment_by_name(name)
        assert experiment is not None and run.info.experiment_id == experiment.experiment_id
        assert mlflow.get_model_version_by_alias(registered, "champion").version == version.version
        assert version.version == "1"  # the run's own registered model: its first version
        assert summary["training"]["trials"] == 2 and summary["training"]["test_auc"] > 0.5

        # Predictions went through NGINX to Ray Serve, none failed; the monitor saw them.
        assert summary["serving"]["requests"] > 0 and summary["serving"]["errors"] == 0
        assert summary["monitoring"]["online_auc"] is not None
        assert "NGINX gateway at http://127.0.0.1:" in done.stdout
        assert (directory / "report.html").is_file()
    finally:
        results = delete_run(project, (MODEL, str(summary["training"]["model_version"])))
    assert not any("failed" in r for r in results), results
    assert _topics(f"{name}.") == []
    assert httpx.get(f"{SEARCH}/{name}-dead-letters-*/_count", timeout=30).json().get("count", 0) == 0
    mlflow = MlflowClient(tracking_uri=MLFLOW)
    assert mlflow.get_experiment_by_name(name).lifecycle_stage == "deleted"
    assert not mlflow.search_registered_models(f"name = '{name}.{MODEL}'")
