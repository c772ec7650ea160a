"""Serving benchmark: `rtml serve` (uvicorn, one process) on Redis, through NGINX and direct.

    .venv/bin/python bench/serving.py [--seconds 10] [--rate 500] [--nginx /usr/sbin/nginx]

Measures, through the gateway and (the peer, same run) straight to the server:
- p50/p99 latency at a fixed offered rate (open loop: latency counted from each request's
  scheduled time, so a stall is not hidden by a slower sender);
- saturation: requests/s with 32 clients sending back to back;
- batch: rows/s of 1,000-row batches, 4 clients.
Needs Redis (scripts/services.sh) and an nginx binary. Writes bench/results/serving.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import xgboost as xgb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402

from rtml.backends.online_store.config import RedisOnlineStoreConfig  # noqa: E402
from rtml.backends.registry import open_backend  # noqa: E402
from rtml.backends.tracking import open_registry  # noqa: E402
from rtml.core.aggregation import EventBatch, build  # noqa: E402
from rtml.datagen import generate  # noqa: E402
from rtml.models import promote  # noqa: E402
from rtml.project import Project, init_project  # noqa: E402
from rtml.services.gateway.nginx import GatewayOptions, write  # noqa: E402
from rtml.testing.online import write_states  # noqa: E402
from rtml.testing.registry import make_report  # noqa: E402
from rtml.timeutil import parse_timestamp, to_millis  # noqa: E402

MODEL = "purchase_1h"
KEY = "bench-key-" + "k" * 24


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(tmp: Path, redis_url: str) -> tuple[Project, dict[str, str], list[dict[str, Any]], str]:
    root = init_project(tmp / "shop", force=True)
    prefix = f"rtml-bench:{uuid.uuid4().hex[:8]}"
    env = {
        "RTML_ONLINE_STORE__TYPE": "redis",
        "RTML_ONLINE_STORE__URL": redis_url,
        "RTML_ONLINE_STORE__KEY_PREFIX": prefix,
        "RTML_SERVER__PORT": str(free_port()),
        "RTML_SERVER__PREDICT__MAX_IN_FLIGHT": "64",
        "RTML_ONLINE_STORE__MAX_CONNECTIONS": "64",
    }
    project = Project.load(root, environ=env)
    now_ms = to_millis(datetime.now(UTC))
    rows = []
    for line in generate(
        20_000, seed=1, start=datetime.now(UTC) - timedelta(hours=6), days=0.25, dirty_rate=0
    ).lines:
        event = json.loads(line)
        event["ts_ms"] = to_millis(parse_timestamp(event.pop("event_time")))
        if event["ts_ms"] < now_ms - 60_000:
            rows.append(event)
    rows.sort(key=lambda r: r["ts_ms"])
    views = ("user_activity", "product_stats", "user_product")
    runtime = build([project.definitions.feature_views[v] for v in views])
    runtime.apply(EventBatch.from_rows(rows))
    store = open_backend("online_store", RedisOnlineStoreConfig(url=redis_url, key_prefix=prefix))
    write_states(store, runtime)
    store.close()
    names = project.definitions.models[MODEL].feature_names
    rng = np.random.default_rng(0)
    x = rng.gamma(1.0, 2.0, size=(5000, len(names))).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 6, "nthread": 1},
        xgb.DMatrix(x, label=(x[:, 0] + x[:, 3] > 4).astype(int), feature_names=names),
        num_boost_round=300,
    )
    registry = open_registry(project)
    report_ = replace(
        make_report(MODEL, features=3), feature_names=names, booster=bytes(booster.save_raw("ubj"))
    )
    registry.log_run(report_)
    registry.close()
    promote(project, MODEL, "1", force=True)
    entities = [
        {"user_id": r["user_id"], "product_id": r["product_id"], "price": r["price"]} for r in rows[-5000:]
    ]
    return project, env, entities, prefix


async def open_loop(
    url: str, entities: list[dict[str, Any]], rate: float, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": KEY}, limits=limits, timeout=30
    ) as client:

        async def one(i: int, due: float) -> None:
            nonlocal errors
            reply = await client.post(f"/predict/{MODEL}", json=entities[i % len(entities)])
            if reply.status_code != 200:
                errors += 1
            latencies.append(time.perf_counter() - due)

        start = time.perf_counter()
        tasks = []
        n = int(rate * seconds)
        for i in range(n):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    p50, p99 = (float(np.percentile(ms, q)) for q in (50, 99))
    return {"rps": n / elapsed, "p50_ms": p50, "p99_ms": p99, "errors": errors}


async def closed_loop(
    url: str, entities: list[dict[str, Any]], clients: int, seconds: float, batch: int = 0
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    rows = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": KEY}, limits=limits, timeout=60
    ) as client:

        async def worker(w: int) -> None:
            nonlocal errors, rows
            i = w * 997
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                if batch:
                    chunk = [entities[(i + k) % len(entities)] for k in range(batch)]
                    reply = await client.post(f"/predict/{MODEL}/batch", json={"rows": chunk})
                    rows += batch if reply.status_code == 200 else 0
                else:
                    reply = await client.post(f"/predict/{MODEL}", json=entities[i % len(entities)])
                    rows += 1 if reply.status_code == 200 else 0
                i += max(batch, 1)
                errors += reply.status_code != 200
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    p50, p99 = (float(np.percentile(ms, q)) for q in (50, 99))
    return {"rps": len(latencies) / elapsed, "rows_per_s": rows / elapsed, "p50_ms": p50, "p99_ms": p99,
            "errors": errors}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument(
        "--nginx", default=os.environ.get("RTML_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    )
    parser.add_argument("--redis", default=os.environ.get("RTML_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rtml-bench-serving-"))
    project, env, entities, prefix = setup(tmp, args.redis)
    port = int(env["RTML_SERVER__PORT"])
    server = subprocess.Popen(
        [sys.executable, "-m", "rtml.cli.main", "serve", "--project", str(project.root)],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=(tmp / "server.log").open("wb"),
    )  # fmt: skip
    gw_port = free_port()
    conf = write(GatewayOptions(conf=tmp / "gw" / "nginx.conf", run_dir=tmp / "gw" / "run",
                                upstreams=(f"127.0.0.1:{port}",), listen=f"127.0.0.1:{gw_port}",
                                api_keys=(KEY,), workers="1", access_log=False))  # fmt: skip
    nginx = subprocess.Popen([args.nginx, "-c", str(conf), "-e", str(tmp / "gw" / "startup.log"),
                              "-g", "daemon off;"])  # fmt: skip
    direct, gateway = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{gw_port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if (
                    httpx.get(f"{direct}/ready").status_code == 200
                    and httpx.get(f"{gateway}/health").is_success
                ):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the server did not get ready; see {tmp / 'server.log'}")
            time.sleep(0.2)
        asyncio.run(closed_loop(gateway, entities, 8, 2))  # warm up
        rows: list[list[Any]] = []
        results: dict[str, Any] = {}
        for name, url in (("nginx -> uvicorn", gateway), ("uvicorn direct (peer)", direct)):
            fixed = asyncio.run(open_loop(url, entities, args.rate, args.seconds))
            sat = asyncio.run(closed_loop(url, entities, 32, args.seconds))
            batch = asyncio.run(closed_loop(url, entities, 4, args.seconds, batch=1000))
            results[name] = {"fixed_rate": fixed, "saturation": sat, "batch_1000": batch}
            rows.append([name, f"{fixed['rps']:.0f}", f"{fixed['p50_ms']:.1f}", f"{fixed['p99_ms']:.1f}",
                         f"{sat['rps']:.0f}", f"{sat['p99_ms']:.1f}", f"{batch['rows_per_s']:.0f}",
                         int(fixed["errors"] + sat["errors"] + batch["errors"])])  # fmt: skip
        report(
            "serving",
            f"POST /predict ({MODEL}, Redis online store, 1 uvicorn process, {args.seconds:g}s per step)",
            ["path", f"offered {args.rate:g}/s: got/s", "p50 ms", "p99 ms", "saturation req/s", "sat p99 ms",
             "batch rows/s", "non-200"],
            rows,
            {"results": results, "rate": args.rate, "seconds": args.seconds},
        )  # fmt: skip
    finally:
        for process in (nginx, server):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        import redis

        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
