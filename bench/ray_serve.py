"""Serving backends side by side: `rtml serve` on uvicorn and on Ray Serve, direct and through NGINX.

    .venv/bin/python bench/ray_serve.py [--requests 300] [--clients 16] [--seconds 5] [--replicas 1]

Same project, same Redis online store, same model version, same machine; the backends run
one after the other (never at once). For each backend, straight to its HTTP port and through
NGINX (`rtml gateway` configuration):
- sequential: `--requests` single-row POST /predict one after another (one client,
  keep-alive): p50/p99 latency; and as many GET /health (the HTTP path without scoring);
- burst: `--clients` clients sending back to back for `--seconds`: requests/s, p50/p99;
- batch: 1,000-row POST /predict/{model}/batch, 2 clients for `--seconds`: rows/s.
Needs Redis (scripts/services.sh) and an nginx binary. Writes bench/results/ray_serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402
from serving import KEY, MODEL, free_port, setup  # noqa: E402

from rtml.services.gateway.nginx import GatewayOptions, write  # noqa: E402


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


def sequential(url: str, entities: list[dict[str, Any]], n: int, health: bool = False) -> dict[str, float]:
    """``n`` requests one after another: POST /predict, or GET /health (the HTTP path alone)."""
    latencies, errors = [], 0
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=30) as client:
        for i in range(n):
            t0 = time.perf_counter()
            if health:
                reply = client.get("/health")
            else:
                reply = client.post(f"/predict/{MODEL}", json=entities[(i * 7) % len(entities)])
            latencies.append(time.perf_counter() - t0)
            errors += reply.status_code != 200
    ms = np.array(latencies) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "errors": errors}


def wait_ready(url: str, gateway: str, process: subprocess.Popen[bytes], log: Path) -> float:
    started = time.monotonic()
    while True:
        try:
            if httpx.get(f"{url}/ready").status_code == 200 and httpx.get(f"{gateway}/health").is_success:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() - started > 180:
            raise SystemExit(f"the server did not get ready; see {log}")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument(
        "--nginx", default=os.environ.get("RTML_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    )
    parser.add_argument("--redis", default=os.environ.get("RTML_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rtml-bench-ray-"))
    project, env, entities, prefix = setup(tmp, args.redis)
    backends = {
        "uvicorn": {**env, "RTML_SERVING__TYPE": "uvicorn"},
        f"ray_serve ({args.replicas} replica)": {
            **env,
            "RTML_SERVING__TYPE": "ray_serve",
            "RTML_SERVING__HTTP_PORT": str(free_port()),
            "RTML_SERVING__NUM_REPLICAS": str(args.replicas),
            "RTML_SERVING__MAX_ONGOING_REQUESTS": "64",
        },
    }
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    try:
        for backend, backend_env in backends.items():
            port = backend_env.get("RTML_SERVING__HTTP_PORT") or backend_env["RTML_SERVER__PORT"]
            log = tmp / f"{backend.split()[0]}.log"
            server = subprocess.Popen(
                [sys.executable, "-m", "rtml.cli.main", "serve", "--project", str(project.root)],
                env={**os.environ, **backend_env}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            gw_port = free_port()
            conf = write(GatewayOptions(conf=tmp / "gw" / "nginx.conf", run_dir=tmp / "gw" / "run",
                                        upstreams=(f"127.0.0.1:{port}",), listen=f"127.0.0.1:{gw_port}",
                                        api_keys=(KEY,), workers="1", access_log=False))  # fmt: skip
            nginx = subprocess.Popen(
                [args.nginx, "-c", str(conf), "-e", str(tmp / "gw" / "startup.log"), "-g", "daemon off;"]
            )
            direct, gateway = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{gw_port}"
            try:
                ready_s = wait_ready(direct, gateway, server, log)
                asyncio.run(closed_loop(gateway, entities, 8, 2))  # warm up
                for path, url in (("direct", direct), ("nginx", gateway)):
                    seq = sequential(url, entities, args.requests)
                    bare = sequential(url, entities, args.requests, health=True)
                    burst = asyncio.run(closed_loop(url, entities, args.clients, args.seconds))
                    batch = asyncio.run(closed_loop(url, entities, 2, args.seconds, batch=1000))
                    name = f"{backend}, {path}"
                    results[name] = {"sequential": seq, "health": bare, "burst": burst, "batch_1000": batch}
                    results[name]["ready_s"] = ready_s
                    errors = int(seq["errors"] + bare["errors"] + burst["errors"] + batch["errors"])
                    cells = [bare["p50_ms"], seq["p50_ms"], seq["p99_ms"], burst["p50_ms"], burst["p99_ms"]]
                    rows.append([name, *(f"{v:.1f}" for v in cells), f"{burst['rps']:.0f}",
                                 f"{batch['rows_per_s']:.0f}", errors])  # fmt: skip
            finally:
                nginx.send_signal(signal.SIGTERM)
                nginx.wait(30)
                stop(server)
        report(
            "ray_serve",
            f"POST /predict ({MODEL}, Redis online store): {args.requests} sequential requests, "
            f"{args.clients} clients for {args.seconds:g}s, 1,000-row batches (2 clients)",
            ["backend, path", "/health p50 ms", "seq p50 ms", "seq p99 ms", "burst p50 ms", "burst p99 ms",
             "burst req/s", "batch rows/s", "non-200"],
            rows,
            {"results": results, "requests": args.requests, "clients": args.clients, "seconds": args.seconds},
        )  # fmt: skip
    finally:
        import redis

        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
