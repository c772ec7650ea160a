"""What the serving integration tests share: ports, the NGINX binary, a tiny model, waiting,
a project serving live Redis features with two registered versions, NGINX in front."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
import typer
import xgboost as xgb
from typer.testing import CliRunner

from rtml.backends.online_store.config import RedisOnlineStoreConfig
from rtml.backends.registry import open_backend
from rtml.backends.tracking import open_registry
from rtml.cli import gateway_cmd
from rtml.core.aggregation import EventBatch, build
from rtml.datagen import generate
from rtml.models import promote
from rtml.project import Project, init_project
from rtml.testing.online import write_states
from rtml.testing.registry import make_report
from rtml.timeutil import parse_timestamp, to_millis

MODEL = "purchase_1h"
VIEWS = ("user_activity", "product_stats", "user_product")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_binary() -> str:
    for candidate in (os.environ.get("RTML_TEST_NGINX"), shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(
        "NGINX is not installed: start the services with `make services` (bash scripts/services.sh "
        "start installs the Debian package nginx) or set RTML_TEST_NGINX to an nginx binary",
        pytrace=False,
    )


def train(names: list[str], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.0, 2.0, size=(400, len(names))).astype(np.float32)
    y = (x[:, 0] + x[:, 2] - x[:, 5] + rng.normal(size=400) > 3).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": seed},
        xgb.DMatrix(x, label=y, feature_names=names),
        num_boost_round=12,
    )
    return bytes(booster.save_raw("ubj"))


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout}s")


def stop(process: subprocess.Popen[bytes], wait_s: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def served_project(
    root: Path, redis_url: str, start_hint: str, env: dict[str, str], seed: int
) -> tuple[Project, dict[str, str], list[dict[str, Any]]]:
    """The example project in ``root`` reading a Redis online store (a key prefix of its
    own, in ``env``) that holds the state of the last three hours as the engine writes it,
    with two versions in the embedded MLflow registry, version 1 the champion. Returns the
    project, its ``RTML_*`` environment and the events (oldest first)."""
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {redis_url} is not reachable ({exc}): {start_hint}", pytrace=False)
    init_project(root, force=True)
    prefix = f"rtml-test:{uuid.uuid4().hex[:10]}"
    env = {
        "RTML_ONLINE_STORE__TYPE": "redis",
        "RTML_ONLINE_STORE__URL": redis_url,
        "RTML_ONLINE_STORE__KEY_PREFIX": prefix,
        "RTML_SERVER__PREDICT__POLL_INTERVAL_S": "0.2",
        "RTML_SERVER__PREDICT__LOG__FLUSH_INTERVAL_S": "0.5",
        **env,
    }
    project = Project.load(root, environ=env)

    start = datetime.now(UTC) - timedelta(hours=3)
    rows = []
    for line in generate(1500, seed=seed, start=start, days=0.12, dirty_rate=0).lines:
        event = json.loads(line)
        event["ts_ms"] = to_millis(parse_timestamp(event.pop("event_time")))
        rows.append(event)
    now_ms = to_millis(datetime.now(UTC))
    rows = sorted((r for r in rows if r["ts_ms"] < now_ms - 60_000), key=lambda r: r["ts_ms"])
    assert len(rows) > 500
    runtime = build([project.definitions.feature_views[v] for v in VIEWS])
    runtime.apply(EventBatch.from_rows(rows))
    store = open_backend("online_store", RedisOnlineStoreConfig(url=redis_url, key_prefix=prefix))
    write_states(store, runtime)
    store.close()

    names = project.definitions.models[MODEL].feature_names
    registry = open_registry(project)
    for version_seed in (1, 2):
        registry.log_run(
            replace(make_report(MODEL, features=3), feature_names=names, booster=train(names, version_seed))
        )
    registry.close()
    promote(project, MODEL, "1", force=True)
    return project, env, rows


def drop_online_state(redis_url: str, env: dict[str, str]) -> None:
    """Delete the keys of ``served_project``'s online store (the server is shared)."""
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{env['RTML_ONLINE_STORE__KEY_PREFIX']}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def start_gateway(
    project: Project, upstream_port: int, listen_port: int, api_key: str, workers: int
) -> subprocess.Popen[bytes]:
    """NGINX with the configuration ``rtml gateway`` writes, in front of ``upstream_port``."""
    app = typer.Typer()
    app.callback()(lambda: None)  # a group, as `rtml` is: `gateway` is a subcommand
    gateway_cmd.register(app)
    conf = project.root / "gateway" / "nginx.conf"
    written = CliRunner().invoke(
        app,
        ["gateway", "--out", str(conf), "--upstream", f"127.0.0.1:{upstream_port}",
         "--listen", f"127.0.0.1:{listen_port}", "--workers", str(workers), "--project", str(project.root)],
        env={"RTML_API_KEY": api_key},
    )  # fmt: skip
    assert written.exit_code == 0, written.output
    return subprocess.Popen(  # noqa: S603 - the nginx binary, our arguments
        [nginx_binary(), "-c", str(conf), "-e", str(conf.parent / "startup.log"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
