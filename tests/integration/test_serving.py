"""Serving end to end on the real servers: ``rtml serve`` (a subprocess, uvicorn) reading a
Redis online store and following the champion alias of the embedded MLflow registry, behind
NGINX run with the configuration ``rtml gateway`` writes.

- the gateway checks the API key of /predict and /events and passes the rest;
- the alias moves (``promote``) and moves back (``rtml models rollback``) while clients keep
  sending requests through NGINX: no request fails, each client sees 1 -> 2 -> 1 and never
  an older version after a newer one, and every prediction lands in the prediction log
  with the version and the score it was served with;
- a Redis that cannot be reached answers a clear 503, not a hang.

NGINX is the Debian package scripts/services.sh installs (``/usr/sbin/nginx``), or the
binary in ``RTML_TEST_NGINX``; without one the test fails, naming how to get it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from tests.integration.serving_support import (
    MODEL,
    drop_online_state,
    free_port,
    served_project,
    start_gateway,
    stop,
    wait_until,
)
from typer.testing import CliRunner

from rtml.backends.prediction_log.config import ParquetPredictionLogConfig
from rtml.backends.prediction_log.parquet import ParquetPredictionLog
from rtml.cli import gateway_cmd, models_cmd
from rtml.models import promote
from rtml.project import Project
from rtml.services.server.app import create_app

pytestmark = pytest.mark.integration

API_KEY = "test-key-" + "x" * 24
REPO = Path(__file__).resolve().parents[2]


def cli() -> typer.Typer:
    """The commands used here (``rtml gateway``, ``rtml models``), as ``rtml`` registers them."""
    app = typer.Typer()
    gateway_cmd.register(app)
    models_cmd.register(app)
    return app


@dataclass
class Stack:
    project: Project
    env: dict[str, str]
    server_url: str
    gateway_url: str
    entities: list[dict[str, Any]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str, start_hint: str) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("serving")
    port, gateway_port = free_port(), free_port()
    project, env, rows = served_project(
        tmp / "shop", redis_url, start_hint, {"RTML_SERVER__PORT": str(port)}, seed=9
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "rtml.cli.main", "serve", "--project", str(project.root)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "server.log").open("wb"),
    )
    gateway = start_gateway(project, port, gateway_port, API_KEY, workers=2)
    server_url, gateway_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{gateway_port}"
    try:
        wait_until(lambda: httpx.get(f"{server_url}/ready").status_code == 200, 90, "the server ready")
        wait_until(lambda: httpx.get(f"{gateway_url}/health").status_code == 200, 30, "the gateway up")
        entities = [
            {"user_id": r["user_id"], "product_id": r["product_id"], "price": r["price"]} for r in rows[-200:]
        ]
        yield Stack(project, env, server_url, gateway_url, entities)
    finally:
        stop(gateway)
        stop(server)
        drop_online_state(redis_url, env)
        if server.returncode not in (0, -signal.SIGTERM):
            print((tmp / "server.log").read_text()[-5000:])


def test_the_gateway_requires_the_api_key_for_predict_and_events(stack: Stack) -> None:
    row = stack.entities[0]
    with httpx.Client(base_url=stack.gateway_url) as client:
        for headers in ({}, {"X-API-Key": "wrong-key-wrong-key"}):
            reply = client.post(f"/predict/{MODEL}", json=row, headers=headers)
            assert reply.status_code == 401 and reply.json()["error"] == "unauthorized"
            assert client.post("/events", json=[], headers=headers).status_code == 401
        ok = client.post(f"/predict/{MODEL}", json=row, headers={"X-API-Key": API_KEY})
        assert ok.status_code == 200 and ok.json()["version"] == "1", ok.text
        assert ok.json()["missing"] == []  # the key's state is in Redis
        assert client.get("/health").status_code == 200  # no key needed
        assert client.get("/ready").json()["ready"] is True
        bad = client.post(f"/predict/{MODEL}", json={"user_id": 1}, headers={"X-API-Key": API_KEY})
        assert bad.status_code == 400 and "body.product_id" in bad.json()["message"]
        big = b'{"user_id": 1, "product_id": 2, "price": 1' + b" " * (6 << 20) + b"}"
        too_big = client.post(f"/predict/{MODEL}", content=big, headers={"X-API-Key": API_KEY})
        assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large"


def test_hot_swap_and_rollback_under_traffic_fail_no_request(stack: Stack) -> None:
    stop_clients = threading.Event()
    seen: list[list[tuple[int, str | None, str | None, float | None]]] = [[] for _ in range(4)]

    def client_loop(n: int) -> None:
        with httpx.Client(base_url=stack.gateway_url, headers={"X-API-Key": API_KEY}, timeout=30) as client:
            i = 0
            while not stop_clients.is_set():
                row = stack.entities[(n * 50 + i) % len(stack.entities)]
                i += 1
                reply = client.post(f"/predict/{MODEL}", json=row)
                body = reply.json() if reply.status_code == 200 else {}
                seen[n].append(
                    (reply.status_code, body.get("version"), body.get("request_id"), body.get("score"))
                )

    def versions_now() -> set[str | None]:
        return {s[-1][1] for s in seen if s}

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: all(len(s) >= 5 for s in seen), 30, "traffic")
        promote(stack.project, MODEL, "2", force=True)
        wait_until(lambda: versions_now() == {"2"} and all(len(s) > 5 for s in seen), 30, "version 2 served")
        rolled = CliRunner().invoke(
            cli(), ["models", "rollback", "-m", MODEL, "--project", str(stack.project.root)], env=stack.env
        )
        assert rolled.exit_code == 0, rolled.output
        marks = [len(s) for s in seen]
        wait_until(lambda: versions_now() == {"1"}, 30, "the rollback served")
        wait_until(lambda: all(len(s) > m + 5 for s, m in zip(seen, marks, strict=True)), 30, "traffic after")
    finally:
        stop_clients.set()
        for t in threads:
            t.join(30)

    replies = [r for s in seen for r in s]
    assert {status for status, *_ in replies} == {200}  # not one request failed during the swaps
    for s in seen:
        versions = [v for _, v, _, _ in s]
        # each client: 1..1, then 2..2, then 1..1 -- never back and forth
        collapsed = [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]
        assert collapsed == ["1", "2", "1"], collapsed

    # Every reply is in the prediction log, with its version and score, once the server flushed.
    log = ParquetPredictionLog(ParquetPredictionLogConfig(path=stack.project.data_dir / "predictions"))

    def logged() -> dict[str, tuple[str, float]]:
        table = log.read(MODEL).to_pylist()
        return {r["request_id"]: (r["version"], r["score"]) for r in table}

    wanted = {rid: (version, score) for _, version, rid, score in replies}
    wait_until(lambda: set(wanted) <= set(logged()), 30, "every prediction logged")
    got = logged()
    for rid, (version, score) in wanted.items():
        assert got[rid][0] == version and got[rid][1] == pytest.approx(score, rel=1e-9)


def test_a_redis_that_cannot_be_reached_is_a_clear_503(stack: Stack) -> None:
    down = Project.load(
        stack.project.root,
        environ={**stack.env, "RTML_ONLINE_STORE__URL": f"redis://127.0.0.1:{free_port()}/0"},
    )
    app = create_app(down)
    with TestClient(app) as client:
        assert app.state.scoring.holder.wait_loaded(60)
        reply = client.post(f"/predict/{MODEL}", json=stack.entities[0])
        assert reply.status_code == 503 and reply.headers["Retry-After"] == "1"
        assert "online store (Redis at" in reply.json()["message"] and "Fix:" in reply.json()["message"]
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["online_store"]["ok"] is False
