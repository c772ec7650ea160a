"""``rtml up`` as a user runs it: a real subprocess supervising real child processes on the
embedded example project (local log, SQLite online store, DuckDB, MLflow on a file).

One story, in order: a first model is trained from events already validated and featured;
``rtml up`` starts; new events are validated and featured while it runs; ``/health``,
``/ui`` and a prediction answer; a ``kill -9`` of the engine is repaired by the supervisor;
SIGINT stops everything with exit 0 and no child left; events produced while it is down
are processed after a restart, each exactly once (the validator's counts add up to what
was produced, and the offline store holds each valid event once).
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from tests.integration.up_support import (
    free_port,
    kill_engine_and_wait,
    produce,
    since_up,
    start_up,
    status,
    stop_and_check,
    stop_up,
    wait,
)

from rtml.apply import apply_project
from rtml.datagen import generate
from rtml.offline import event_tables, offline_store
from rtml.project import Project
from rtml.services.engine import EngineService
from rtml.services.logging import service_logger
from rtml.services.supervisor.children import Child
from rtml.services.supervisor.monitor import Monitor
from rtml.services.supervisor.schedule import RetrainSchedule
from rtml.services.supervisor.settings import UpSettings
from rtml.services.validator import ValidatorService
from rtml.services.validator.counts import counts
from rtml.testing import example_project
from rtml.training import train

pytestmark = pytest.mark.integration

MODEL = "purchase_1h"
CLOCK = "2019-10-20T00:00:00Z"  # after the generated stream
FIRST, SECOND, THIRD = 12_000, 3_000, 2_000


def _project(tmp_path: Path, port: int) -> Project:
    root = example_project(tmp_path / "shop").root
    (root / "rtml.yaml").write_text(
        f"project: up-{uuid.uuid4().hex[:8]}\n"
        "event_log: {type: local, path: .rtml/log.db}\n"
        f"validator: {{clock: '{CLOCK}', batch_size: 1000, poll_timeout: 100ms}}\n"
        "engine: {batch_size: 1000, poll_timeout: 100ms, checkpoint_interval: 1s, exact_for: 40d}\n"
        f"server: {{port: {port}, predict: {{poll_interval_s: 1}}}}\n"
        "training: {trials: 2}\n"
        "trainer: {n_jobs: 1}\n"
    )
    return Project.load(root, environ={})


def test_up_runs_supervises_stops_and_resumes(tmp_path: Path) -> None:
    port = free_port()
    project = _project(tmp_path, port)
    apply_project(project, dry_run=False)
    generation = generate(FIRST + SECOND + THIRD, seed=11)
    lines = generation.lines
    first, second, third = lines[:FIRST], lines[FIRST : FIRST + SECOND], lines[FIRST + SECOND :]

    # History: validated and featured before `up` (in this process), and a first champion.
    produce(project, first)
    ValidatorService(project).run(until_idle=True)
    EngineService(project).run(until_idle=True)
    valid_first = counts(project)["valid"]
    outcome = train(project, MODEL)
    assert outcome.version is not None

    out = tmp_path / "up.out"
    up = start_up(project, out, "--port", str(port), "--no-retrain")
    try:
        url = f"http://127.0.0.1:{port}"
        wait(lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200, 90, "/health", up)

        # New events while it runs: validated, then applied by the engine.
        produce(project, second)
        wait(lambda: since_up(project, "validator") == SECOND, 60, "second batch validated", up)
        valid_now = counts(project)["valid"]
        valid_second = valid_now - valid_first
        wait(lambda: since_up(project, "engine") == valid_second, 60, "second batch featured", up)

        page = httpx.get(f"{url}/ui", timeout=10)
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        for name in ("validator", "engine", "server", "monitor"):
            assert f"<td>{name}</td>" in page.text
        assert "running" in page.text

        cart = next(r for r in reversed(generation.truth) if r.event_id)
        request = {"user_id": cart.user_id, "product_id": cart.product_id, "price": 10.0}
        reply = wait(
            lambda: (
                (r := httpx.post(f"{url}/predict/{MODEL}", json=request, timeout=10)).status_code == 200 and r
            ),
            60,
            "a prediction",
            up,
        )
        body = reply.json()
        assert 0.0 <= body["score"] <= 1.0
        assert str(body["version"]) == str(outcome.version.version)

        kill_engine_and_wait(project, up)  # kill -9: the supervisor starts a new one
        stop_and_check(project, up, out)
    finally:
        if up.poll() is None:
            up.kill()

    # The monitor's check over the prediction log (run here: its interval is a minute).
    checked = Monitor(project, UpSettings()).run_once()["models"][MODEL]
    assert checked["champion"] == str(outcome.version.version)
    assert checked["predictions"] >= 1
    # PSI of each served feature with a value (a feature served only as null has none).
    assert checked["psi"] and set(checked["psi"]) <= set(outcome.report.feature_names)
    _retrain_once(project, tmp_path)

    # While it is down: more events. After a restart they are processed, each once.
    produce(project, third)
    up = start_up(project, out, "--no-server", "--no-retrain")
    try:
        wait(lambda: status(project)["pid"] == up.pid, 60, "the new status file", up)
        wait(lambda: since_up(project, "validator") == THIRD, 90, "third batch validated", up)
        total = counts(project)
        assert total["valid"] + total["invalid"] + total["duplicates"] == len(lines)
        wait(
            lambda: since_up(project, "engine") == total["valid"] - valid_now,
            60,
            "third batch featured",
            up,
        )
        assert stop_up(up, out) == 0, out.read_text()[-4000:]
    finally:
        if up.poll() is None:
            up.kill()

    total = counts(project)
    summary = generation.summary
    assert (total["valid"], total["invalid"], total["duplicates"]) == (
        summary.valid,
        summary.invalid,
        summary.duplicates,
    )
    store = offline_store(project)
    try:
        stored = store.read(event_tables(project)["events"])
    finally:
        store.close()
    ids = stored.column("event_id").to_pylist()
    assert len(ids) == len(set(ids)) == summary.valid


def _retrain_once(project: Project, tmp_path: Path) -> None:
    """The schedule, due after a second: one training child that registers a new version;
    a schedule made afterwards (a restarted `rtml up`) keeps the rhythm from the state file."""
    from rtml.backends.tracking import open_registry

    settings = UpSettings(retrain_every="1s")
    state = project.root / project.data_dir / "up"
    schedule = RetrainSchedule(project, settings, state, tmp_path, service_logger("test.up"))
    wait(lambda: schedule.tick() or schedule.state.get("last_exit") is not None, 120, "a scheduled training")
    assert schedule.state["last_exit"] == 0, (tmp_path / "train.log").read_text()[-4000:]
    registry = open_registry(project)
    try:
        assert len(registry.versions(MODEL)) == 2
    finally:
        registry.close()
    again = RetrainSchedule(project, settings, state, tmp_path, service_logger("test.up"))
    assert again.due_ms() == schedule.state["last_started_ms"] + 1000


def test_a_crash_loop_is_given_up_after_backed_off_restarts(tmp_path: Path) -> None:
    """The restart policy on a real child that always fails: restarted with doubling
    backoff, then given up once it crashed more than the limit within the window."""
    child = Child("failing", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "failing.log")
    delays = []
    while child.state != "failed":
        child.start()
        assert child.process is not None
        child.process.wait(30)
        assert child.exited() == 3
        child.plan_restart(backoff_s=0.5, backoff_max_s=1.5, window_s=60, limit=3)
        if child.next_start is not None:
            delays.append(child.next_start - time.monotonic())
    assert len(child.crashes) == 4
    assert [round(d * 2) / 2 for d in delays] == [0.5, 1.0, 1.5]
    assert child.last_exit == 3
    assert "raise SystemExit(3)" in child.log_path.read_text()
