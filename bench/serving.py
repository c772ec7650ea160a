"""Serving benchmark: `rtml serve` on Redis behind NGINX, and Feast's feature server beside it.

    .venv/bin/python bench/serving.py [--seconds 10] [--rate 500] [--workers 2] [--no-feast]
        [--no-inline] [--access-log all|errors|off]

Everything on this machine, over loopback: Redis (scripts/services.sh), NGINX (`rtml gateway`
config) in front of ``--workers`` `rtml serve` processes (one uvicorn each, NGINX balancing
over them), the load generators, and -- the peer, measured in the same run -- Feast 0.67's
Python feature server (``feast serve``, as many workers) on a Redis online store holding
the same feature values (bench/feast_serving.py), answering the features-only request.

Steps, each ``--seconds`` long, per target:
- fixed rate: ``--rate`` single-row requests/s from an asyncio httpx client with keep-alive,
  open loop (latency counted from each request's scheduled time, so a stall is not hidden
  by a slower sender): p50/p99;
- saturation: `wrk` (1 thread, ``--connections``) sending back to back: requests/s, its
  p50/p99, and the CPU the server processes used per request;
- batch (rtml): `wrk`, 2 connections, 1,000-row ``/predict/{model}/batch`` bodies: rows/s.
Each target runs alone: rtml's servers stop before Feast's start (an idle server still polls
and flushes on timers).

Needs Redis, an nginx binary and `wrk` (Debian/Ubuntu: ``apt-get install -y wrk``; macOS:
``brew install wrk``); the Feast peer needs Feast's venv (see bench/feast_serving.py) or
``--no-feast``. Writes bench/results/serving.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
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
import feast_serving  # noqa: E402
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
WRK_HINT = "install wrk: `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk` (macOS)"
BATCH_ROWS = 1000


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
    url: str, path: str, bodies: list[bytes], rate: float, seconds: float
) -> dict[str, float]:
    """``rate`` requests/s for ``seconds``, each sent at its scheduled time whatever the
    answers before it (open loop); latency from the scheduled time to the answer.

    A minimal HTTP/1.1 client on asyncio streams with keep-alive connections (a connection
    is reused when idle, a new one opened when none is): httpx costs ~2 ms of CPU per
    request here and could not send 500/s on this machine, which then counts as latency."""
    host, port = url.removeprefix("http://").split(":")
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: ").encode()  # fmt: skip
    requests = [head + str(len(b)).encode() + b"\r\n\r\n" + b for b in bodies]
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened: list[asyncio.StreamWriter] = []
    latencies: list[float] = []
    errors = 0

    async def one(i: int, due: float) -> None:
        nonlocal errors
        try:
            if idle:
                reader, writer = idle.pop()
            else:
                reader, writer = await asyncio.open_connection(host, int(port))
                opened.append(writer)
            writer.write(requests[i % len(requests)])
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            errors += status.split(b" ", 2)[1] != b"200"
            idle.append((reader, writer))
        except (OSError, asyncio.IncompleteReadError, IndexError):
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
    for writer in opened:
        writer.close()
    ms = np.array(latencies) * 1000
    p50, p99 = (float(np.percentile(ms, q)) for q in (50, 99))
    return {"rps": n / elapsed, "p50_ms": p50, "p99_ms": p99, "errors": errors, "connections": len(opened)}


def run_loop(coro: Any) -> Any:
    """``asyncio.run`` on uvloop when it is installed (a cheaper client)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def wrk(url: str, path: str, bodies: list[bytes], seconds: float, connections: int, tmp: Path,
        pids: list[int]) -> dict[str, float]:  # fmt: skip
    """`wrk` sending ``bodies`` (round robin) back to back; plus the CPU ``pids`` used."""
    body_file = tmp / f"bodies-{uuid.uuid4().hex[:6]}.txt"
    body_file.write_bytes(b"\n".join(bodies) + b"\n")
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["X-API-Key"] = "{KEY}"\n'
        f'local bodies = {{}}\nfor line in io.lines("{body_file}") do bodies[#bodies + 1] = line end\n'
        "local i = 0\nrequest = function()\n  i = i + 1\n"
        f'  return wrk.format(nil, "{path}", nil, bodies[(i % #bodies) + 1])\nend\n'
    )
    cpu0 = _cpu_ticks(pids)
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    cpu_s = (_cpu_ticks(pids) - cpu0) / os.sysconf("SC_CLK_TCK")
    out = done.stdout
    dist = out[out.index("Latency Distribution") :]
    n = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", dist).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", dist).group(1)),  # type: ignore[union-attr]
        "errors": (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sock.groups())) if sock else 0),
        "server_cpu_ms_per_request": cpu_s * 1000 / max(n, 1),
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _cpu_ticks(pids: list[int]) -> int:
    """utime + stime of ``pids`` and their children (gunicorn/uvicorn workers)."""
    total = 0
    seen: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except (OSError, IndexError):
            continue
        todo += [int(c) for c in children]
    return total


def wait_ready(urls: list[str], processes: list[subprocess.Popen[bytes]], log: Path) -> None:
    deadline = time.monotonic() + 120
    for url in urls:
        while True:
            if any(p.poll() is not None for p in processes):
                raise SystemExit(f"a server exited; see {log}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not get ready; see {log}")
            time.sleep(0.2)


def _row(name: str, fixed: dict[str, float], sat: dict[str, float]) -> list[Any]:
    return [name, f"{fixed['rps']:.0f}", f"{fixed['p50_ms']:.2f}", f"{fixed['p99_ms']:.2f}",
            f"{sat['rps']:.0f}", f"{sat['p99_ms']:.1f}", f"{sat['server_cpu_ms_per_request']:.2f}",
            int(fixed["errors"] + sat["errors"])]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--workers", type=int, default=2, help="rtml serve processes behind NGINX")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections at saturation")
    parser.add_argument("--no-feast", action="store_true", help="skip the Feast peer")
    parser.add_argument(
        "--inline", action=argparse.BooleanOptionalAction, default=True,
        help="server.predict.inline_single_rows: single rows on the event loop (the default)",
    )  # fmt: skip
    parser.add_argument(
        "--access-log", choices=["all", "errors", "off"], default="all",
        help="server.access_log: which requests get an http_request log line",
    )  # fmt: skip
    parser.add_argument(
        "--nginx", default=os.environ.get("RTML_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    )
    parser.add_argument("--redis", default=os.environ.get("RTML_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit(f"`wrk` is not on PATH. Fix: {WRK_HINT}")
    if not Path(args.nginx).exists():
        raise SystemExit(f"no nginx at {args.nginx}. Fix: apt-get install -y nginx, or pass --nginx")
    if not args.no_feast and not feast_serving.FEAST_PYTHON.exists():
        raise SystemExit(f"no Feast venv for the peer. Fix: {feast_serving.SETUP_HINT} (or pass --no-feast)")
    load = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="rtml-bench-serving-"))
    project, env, entities, prefix = setup(tmp, args.redis)
    env["RTML_SERVER__PREDICT__INLINE_SINGLE_ROWS"] = str(args.inline).lower()
    env["RTML_SERVER__ACCESS_LOG"] = args.access_log
    ports = [free_port() for _ in range(args.workers)]
    servers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rtml.cli.main",
                "serve",
                "--project",
                str(project.root),
                "--port",
                str(port),
            ],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=(tmp / f"server-{port}.log").open("wb"),
        )  # fmt: skip
        for port in ports
    ]
    gw_port = free_port()
    options = GatewayOptions(
        conf=tmp / "gw" / "nginx.conf",
        run_dir=tmp / "gw" / "run",
        upstreams=tuple(f"127.0.0.1:{p}" for p in ports),
        listen=f"127.0.0.1:{gw_port}",
        api_keys=(KEY,),
        workers="1",
        access_log=False,
    )
    conf = write(options)
    nginx = subprocess.Popen([args.nginx, "-c", str(conf), "-e", str(tmp / "gw" / "startup.log"),
                              "-g", "daemon off;"])  # fmt: skip
    gateway = f"http://127.0.0.1:{gw_port}"
    feast: feast_serving.FeastServer | None = None
    try:
        wait_ready([f"http://127.0.0.1:{p}/ready" for p in ports] + [f"{gateway}/health"], servers, tmp)
        server_pids = [p.pid for p in servers] + [nginx.pid]
        predict = f"/predict/{MODEL}"
        singles = [json.dumps(e).encode() for e in entities]
        batches = [json.dumps({"rows": entities[i : i + BATCH_ROWS]}).encode()
                   for i in range(0, len(entities) - BATCH_ROWS + 1, BATCH_ROWS)]  # fmt: skip
        rows: list[list[Any]] = []
        results: dict[str, Any] = {}

        def measure(name: str, url: str, path: str, bodies: list[bytes], pids: list[int]) -> None:
            run_loop(open_loop(url, path, bodies, 200, 2))  # warm up
            fixed = run_loop(open_loop(url, path, bodies, args.rate, args.seconds))
            sat = wrk(url, path, bodies, args.seconds, args.connections, tmp, pids)
            results[name] = {"fixed_rate": fixed, "saturation": sat}
            rows.append(_row(name, fixed, sat))

        # Each target alone on the machine: rtml (single rows, then batches), then its servers
        # stop and Feast's start (idle servers of the other still take CPU: polls, timers).
        measure(f"rtml predict: nginx -> {args.workers} uvicorn", gateway, predict, singles, server_pids)
        batch = wrk(gateway, f"{predict}/batch", batches, args.seconds, 2, tmp, server_pids)
        batch["rows_per_s"] = batch["rps"] * BATCH_ROWS
        batch["server_cpu_ms_per_row"] = batch.pop("server_cpu_ms_per_request") / BATCH_ROWS
        results["batch"] = batch
        _stop([nginx, *servers])
        if not args.no_feast:
            exported = feast_serving.export(project, MODEL, entities, tmp / "feast")
            feast = feast_serving.FeastServer(tmp / "feast", args.redis, free_port(), args.workers)
            feast.__enter__()
            feast_bodies = [
                json.dumps(feast_serving.request_body(exported["refs"], e, exported["keys"])).encode()
                for e in entities
            ]
            check = httpx.post(
                f"{feast.url}/get-online-features",
                content=feast_bodies[0],
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            if check.status_code != 200:
                raise SystemExit(f"Feast answered {check.status_code}: {check.text[:500]}")
            feast_pids = [feast._process.pid] if feast._process else []
            measure(f"Feast features only: {args.workers} workers", feast.url, "/get-online-features",
                    feast_bodies, feast_pids)  # fmt: skip
        report(
            "serving",
            f"POST /predict/{MODEL} (Redis online store, XGBoost 300 trees) vs Feast get-online-features; "
            f"{args.seconds:g}s per step; load average at start {load[0]:.1f}",
            ["target", f"offered {args.rate:g}/s: got/s", "p50 ms", "p99 ms", "wrk req/s", "wrk p99 ms",
             "server CPU ms/req", "errors"],
            rows,
            {"results": results, "rate": args.rate, "seconds": args.seconds, "workers": args.workers,
             "inline_single_rows": args.inline, "access_log": args.access_log, "load_average_at_start": load},
        )  # fmt: skip
        print(f"batch ({BATCH_ROWS} rows, 2 connections, through NGINX): {batch['rows_per_s']:,.0f} rows/s, "
              f"p99 {batch['p99_ms']:.0f} ms, server CPU {batch['server_cpu_ms_per_row'] * 1000:.0f} us/row, "
              f"errors {batch['errors']:.0f}")  # fmt: skip
    finally:
        if feast is not None:
            feast.__exit__(None, None, None)
        _stop([nginx, *servers])
        import redis

        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        shutil.rmtree(tmp, ignore_errors=True)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    main()
