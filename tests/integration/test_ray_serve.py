"""``serving: {type: ray_serve}`` on a real local Ray Serve (one replica), behind NGINX.

``rtml serve`` runs as a subprocess with ``serving.type: ray_serve``: it starts a local Ray,
deploys the server app on Ray Serve and serves until Ctrl-C. The project reads a Redis
online store and the embedded MLflow registry (SQLite in the project's data dir, which the
Ray replica, another process, reads too). Its peer is the ``uvicorn`` backend serving the
same project in this process. Checked:

- the scores and served features of Ray Serve equal uvicorn's for the same rows, version
  and time (``?at=``), one row at a time (direct) and in batches (through NGINX);
- the gateway in front of Ray Serve: API key, 404 for an unknown model, 400, /ready;
- a promotion is followed by the Ray Serve replica within seconds, and a rollback too;
  the replica's prediction log holds each reply with its version and score;
- Ctrl-C (SIGINT) ends ``rtml serve`` with status 0, and no Ray process is left.

Ray starts once for the module (about 30 s on two cores).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.serving_support import (
    MODEL,
    drop_online_state,
    free_port,
    served_project,
    start_gateway,
    stop,
    wait_until,
)

from rtml.backends.prediction_log.config import ParquetPredictionLogConfig
from rtml.backends.prediction_log.parquet import ParquetPredictionLog
from rtml.backends.serving.config import RayServeConfig
from rtml.backends.serving.ray_serve import deployment_options, ray_temp_dir
from rtml.backends.serving.uvicorn import UvicornServing
from rtml.errors import ConfigError
from rtml.models import promote
from rtml.project import Project

pytestmark = pytest.mark.integration

API_KEY = "ray-key-" + "r" * 24


@dataclass
class Stack:
    project: Project
    server: subprocess.Popen[bytes]
    ray_url: str  # Ray Serve's HTTP proxy
    uvicorn_url: str  # the peer: the uvicorn backend, same project
    gateway_url: str  # NGINX in front of Ray Serve
    entities: list[dict[str, Any]]
    at: str  # features are read as of this time on both backends
    log_file: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str, start_hint: str) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("ray_serve")
    ray_port, gateway_port = free_port(), free_port()
    ray_env = {
        "RTML_SERVING__TYPE": "ray_serve",
        "RTML_SERVING__HTTP_PORT": str(ray_port),
        "RTML_SERVING__NUM_REPLICAS": "1",
    }
    project, env, rows = served_project(tmp / "shop", redis_url, start_hint, ray_env, seed=11)
    root = project.root
    at = datetime.now(UTC).isoformat()  # features are read as of this time on both backends

    log_file = tmp / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "rtml.cli.main", "serve", "--project", str(root)],
        env={**os.environ, **env},
        stdout=log_file.open("wb"),
        stderr=subprocess.STDOUT,
    )
    peer = UvicornServing()
    gateway = start_gateway(project, ray_port, gateway_port, API_KEY, workers=1)
    ray_url, gateway_url = f"http://127.0.0.1:{ray_port}", f"http://127.0.0.1:{gateway_port}"
    try:
        uvicorn_url = peer.start(project, port=free_port())
        wait_until(lambda: httpx.get(f"{uvicorn_url}/ready").status_code == 200, 60, "uvicorn ready")

        def ray_ready() -> bool:
            assert server.poll() is None, f"rtml serve ended: {log_file.read_text()[-3000:]}"
            return httpx.get(f"{ray_url}/ready").status_code == 200

        wait_until(ray_ready, 150, "Ray Serve ready")
        wait_until(lambda: httpx.get(f"{gateway_url}/health").status_code == 200, 30, "the gateway up")
        entities = [
            {"user_id": r["user_id"], "product_id": r["product_id"], "price": r["price"]} for r in rows[-60:]
        ]
        yield Stack(project, server, ray_url, uvicorn_url, gateway_url, entities, at, log_file)
    finally:
        stop(gateway)
        stop(server, 60)
        peer.stop()
        drop_online_state(redis_url, env)


def scores(base_url: str, stack: Stack, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        out = []
        for row in rows:
            reply = client.post(f"/predict/{MODEL}", params={"features": "true", "at": stack.at}, json=row)
            assert reply.status_code == 200, reply.text
            out.append(reply.json())
        return out


def test_ray_serve_scores_equal_the_uvicorn_backend(stack: Stack) -> None:
    ray, peer = scores(stack.ray_url, stack, stack.entities), scores(stack.uvicorn_url, stack, stack.entities)
    assert [r["version"] for r in ray] == [p["version"] for p in peer] == ["1"] * len(ray)
    for r, p in zip(ray, peer, strict=True):
        assert r["features"] == p["features"] and r["missing"] == p["missing"]
        assert r["score"] == pytest.approx(p["score"], rel=1e-12, abs=1e-15)
    assert sum(1 for r in ray if not r["missing"]) > len(ray) // 2  # features from Redis, not defaults
    assert len({round(r["score"], 9) for r in ray}) > 5  # the rows differ, so do their scores

    # A batch through NGINX equals uvicorn's batch, row for row.
    body = {"rows": stack.entities[:25]}
    params = {"at": stack.at}
    via_gateway = httpx.post(
        f"{stack.gateway_url}/predict/{MODEL}/batch", params=params, json=body, headers={"X-API-Key": API_KEY}
    )
    direct = httpx.post(f"{stack.uvicorn_url}/predict/{MODEL}/batch", params=params, json=body)
    assert via_gateway.status_code == 200 == direct.status_code, via_gateway.text
    got, want = via_gateway.json(), direct.json()
    assert got["version"] == want["version"] == "1"
    assert [p["score"] for p in got["predictions"]] == pytest.approx(
        [p["score"] for p in want["predictions"]], rel=1e-12
    )


def test_the_gateway_in_front_of_ray_serve(stack: Stack) -> None:
    row = stack.entities[0]
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        for headers in ({}, {"X-API-Key": "wrong-key-wrong-key"}):
            denied = client.post(f"/predict/{MODEL}", json=row, headers=headers)
            assert denied.status_code == 401 and denied.json()["error"] == "unauthorized"
        key = {"X-API-Key": API_KEY}
        ok = client.post(f"/predict/{MODEL}", json=row, headers={**key, "X-Request-ID": "via-nginx-1"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["request_id"] == "via-nginx-1" and ok.json()["version"] == "1"
        unknown = client.post("/predict/no_such_model", json=row, headers=key)
        assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
        assert MODEL in unknown.json()["message"]
        bad = client.post(f"/predict/{MODEL}", json={"user_id": 1}, headers=key)
        assert bad.status_code == 400 and "body.product_id" in bad.json()["message"]
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["models"][MODEL]["version"] == "1"
        assert client.get("/health").status_code == 200
        assert "rtml_predictions_total" in client.get("/metrics").text
    # Directly on Ray Serve's proxy, the same API without the gateway's key check.
    assert httpx.post(f"{stack.ray_url}/predict/no_such_model", json=row).status_code == 404
    assert httpx.get(f"{stack.ray_url}/ready").json()["ready"] is True


def test_the_replica_follows_a_promotion_and_a_rollback(stack: Stack) -> None:
    row = stack.entities[1]
    served: list[tuple[str, str, float]] = []

    def ray_version(client: httpx.Client) -> str:
        rid = f"swap-{uuid.uuid4().hex[:12]}"
        reply = client.post(
            f"/predict/{MODEL}", json=row, params={"at": stack.at}, headers={"X-Request-ID": rid}
        )
        assert reply.status_code == 200, reply.text
        served.append((rid, reply.json()["version"], reply.json()["score"]))
        return str(reply.json()["version"])

    def peer_version() -> str:
        return str(scores(stack.uvicorn_url, stack, [row])[0]["version"])

    with httpx.Client(base_url=stack.ray_url, timeout=30) as client:
        assert ray_version(client) == "1"
        promote(stack.project, MODEL, "2", force=True)
        wait_until(lambda: ray_version(client) == "2", 30, "Ray Serve serving version 2")
        # The uvicorn peer polls the alias on its own clock: wait for it too before comparing.
        wait_until(lambda: peer_version() == "2", 30, "the uvicorn peer serving version 2")
        peer = scores(stack.uvicorn_url, stack, [row])[0]
        assert peer["version"] == "2" and served[-1][2] == pytest.approx(peer["score"], rel=1e-12)
        assert served[-1][2] != pytest.approx(served[0][2], rel=1e-6)  # another model, another score
        promote(stack.project, MODEL, "1", force=True)  # back, for the other tests
        wait_until(lambda: ray_version(client) == "1", 30, "Ray Serve back on version 1")
        wait_until(lambda: peer_version() == "1", 30, "the uvicorn peer back on version 1")
    versions = [v for _, v, _ in served]
    assert [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v] == ["1", "2", "1"]

    # The replica logged every reply with the version and score it served.
    log = ParquetPredictionLog(ParquetPredictionLogConfig(path=stack.project.data_dir / "predictions"))

    def logged() -> dict[str, tuple[str, float]]:
        return {r["request_id"]: (r["version"], r["score"]) for r in log.read(MODEL).to_pylist()}

    wait_until(lambda: {rid for rid, _, _ in served} <= set(logged()), 30, "the replica's log written")
    got = logged()
    for rid, version, score in served:
        assert got[rid][0] == version and got[rid][1] == pytest.approx(score, rel=1e-9)


def test_ctrl_c_stops_rtml_serve_and_ray(stack: Stack) -> None:
    temp_dir = str(ray_temp_dir(stack.project.data_dir))
    assert ray_processes(temp_dir)  # the local Ray that rtml serve started
    stack.server.send_signal(signal.SIGINT)
    assert stack.server.wait(90) == 0, stack.log_file.read_text()[-3000:]
    with (
        pytest.raises(OSError),
        socket.create_connection(("127.0.0.1", int(stack.ray_url.rsplit(":", 1)[1])), 2),
    ):
        pass
    wait_until(lambda: not ray_processes(temp_dir), 30, "every Ray process gone")
    assert "Traceback" not in stack.log_file.read_text()


def ray_processes(temp_dir: str) -> list[int]:
    """Processes of the Ray session under ``temp_dir`` (their command lines name it)."""
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if temp_dir in cmdline:
            found.append(int(pid))
    return found


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"num_replicas": 3}, {"num_replicas": 3, "max_ongoing_requests": 32}),
        (
            {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 5, "max_ongoing_requests": 16},
            {
                "max_ongoing_requests": 16,
                "autoscaling_config": {
                    "min_replicas": 1, "max_replicas": 4, "initial_replicas": 1, "target_ongoing_requests": 5,
                },
            },
        ),
        (
            {"max_replicas": 2, "num_replicas": 5},
            {
                "max_ongoing_requests": 32,
                "autoscaling_config": {
                    "min_replicas": 1, "max_replicas": 2, "initial_replicas": 2, "target_ongoing_requests": 8,
                },
            },
        ),
    ],
)  # fmt: skip
def test_deployment_options_from_rtml_yaml(settings: dict[str, Any], expected: dict[str, Any]) -> None:
    assert deployment_options(RayServeConfig(**settings)) == expected


def test_min_replicas_above_max_replicas_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="min_replicas .* max_replicas"):
        deployment_options(RayServeConfig(min_replicas=3, max_replicas=2))
