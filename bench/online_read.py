"""Online feature reads: µs per ``get_online_features`` call, against a hand-written cache.

    python bench/online_read.py [--events 200000] [--calls 5000] [--redis redis://127.0.0.1:6379/0]

The example model (3 feature views, 18 window features, 2 on-demand features) for one
entity row per call, through a kept-open ``OnlineFeatures`` reader (what the server does)
on the embedded SQLite store and on Redis, with the states the aggregation runtime exports
after the generator's stream (``exact_for`` 10 min, as the engine runs). ``at`` is one
second after the newest event, each call a random (user, product) seen in the stream.

Each case is shown with the process's CPU µs per call beside the wall times (on a shared
machine the wall time includes waiting for a core). The reader keeps the last 1,024 decoded
states per view (keyed by the stored bytes: exact); the "no decode cache" rows turn that
off, so every read decodes its blobs as it would for keys that changed since the last read.

The peer, measured in the same run on the same Redis: what a hand-written cache does --
one ``GET`` of a pre-serialized JSON dict of the 20 values per (user, product) and
``json.loads``. It serves values computed at write time for one moment; rtml computes them
at ``at`` from the key's tiles (any covered time, exact to the millisecond).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from common import report

from rtml.backends.online_store import OnlineStore
from rtml.backends.online_store.config import RedisOnlineStoreConfig, SqliteOnlineStoreConfig
from rtml.backends.online_store.redis import RedisOnlineStore
from rtml.backends.online_store.sqlite import SqliteOnlineStore
from rtml.core.aggregation import EventBatch, build
from rtml.datagen import generate
from rtml.features import MISSING, OnlineFeatures
from rtml.project import Project, init_project
from rtml.testing.online import write_states
from rtml.timeutil import from_millis, parse_timestamp, to_millis

MODEL = "purchase_1h"
BATCH = 10_000


def stream(n: int) -> list[dict[str, Any]]:
    rows = []
    for line in generate(n, seed=1, dirty_rate=0).lines:
        event = json.loads(line)
        event["ts_ms"] = to_millis(parse_timestamp(event.pop("event_time")))
        rows.append(event)
    return rows


def timed(call: Callable[[], Any], n: int) -> tuple[list[float], float]:
    """Wall µs of each of ``n`` calls, and the process's CPU µs per call (the machine may be
    shared: CPU time is what the read costs, wall time includes waiting for a core)."""
    for _ in range(min(500, n)):  # warm up: caches, connections, plans
        call()
    out = []
    clock = time.perf_counter_ns
    cpu0 = time.process_time_ns()
    for _ in range(n):
        t0 = clock()
        call()
        out.append((clock() - t0) / 1000)
    return out, (time.process_time_ns() - cpu0) / 1000 / n


def summary(name: str, measured: tuple[list[float], float], per: int = 1) -> list[Any]:
    samples, cpu = measured
    ordered = sorted(s / per for s in samples)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return [
        name,
        round(p(0.5), 1),
        round(p(0.99), 1),
        round(statistics.fmean(ordered), 1),
        round(cpu / per, 1),
    ]


def measure(
    name: str,
    project: Project,
    store: OnlineStore,
    entities: list[dict[str, Any]],
    at: datetime,
    calls: int,
    rng: random.Random,
) -> list[list[Any]]:
    """One backend: one row per call, 100 and 1,000 rows per call, and the store's read alone."""
    with OnlineFeatures(project, store) as reader:
        picks = iter(rng.choices(entities, k=calls + 500))
        one = timed(lambda: reader.get(MODEL, [next(picks)], at), calls)
        batch = rng.sample(entities, 100)
        hundred = timed(lambda: reader.get(MODEL, batch, at), max(50, calls // 50))
        big = rng.sample(entities, 1000)
        thousand = timed(lambda: reader.get(MODEL, big, at), max(10, calls // 500))
    with OnlineFeatures(project, store) as reader:  # every state decoded on every read
        for view_read in reader.plan(MODEL).views:
            if hasattr(view_read, "fast"):  # (an rtml before the compiled reader has no cache)
                view_read.fast.cache_size = 0
        picks = iter(rng.choices(entities, k=calls + 500))
        cold_one = timed(lambda: reader.get(MODEL, [next(picks)], at), calls)
        cold = timed(lambda: reader.get(MODEL, big, at), max(10, calls // 500))
    keys = iter(rng.choices([(e["user_id"],) for e in entities], k=calls + 500))
    raw = timed(lambda: store.read("user_activity", [next(keys)]), calls)
    return [
        summary(f"rtml get_online_features, {name}", one),
        summary(f"  same, 100 rows per call (per row), {name}", hundred, per=100),
        summary(f"  same, 1,000 rows per call (per row), {name}", thousand, per=1000),
        summary(f"  1 row per call, no decode cache, {name}", cold_one),
        summary(f"  1,000 rows per call, no decode cache (per row), {name}", cold, per=1000),
        summary(f"  store.read alone (1 view, 1 key), {name}", raw),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    rows = stream(args.events)
    rng = random.Random(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = init_project(Path(tmp) / "shop", force=True)
        project = Project.load(root, environ={"RTML_EVENT_LOG__TYPE": "memory"})
        views = list(project.definitions.models[MODEL].feature_views)
        runtime = build(views)
        for i in range(0, len(rows), BATCH):
            runtime.apply(EventBatch.from_rows(rows[i : i + BATCH]))
        at = from_millis(max(r["ts_ms"] for r in rows) + 1000)
        entities = [
            {"user_id": r["user_id"], "product_id": r["product_id"], "price": r["price"]}
            for r in rng.sample(rows, 2000)
        ]
        prefix = f"rtml-bench:{uuid.uuid4().hex[:8]}"
        stores: dict[str, OnlineStore] = {
            "sqlite (WAL file)": SqliteOnlineStore(SqliteOnlineStoreConfig(path=Path(tmp) / "online.db")),
            "redis": RedisOnlineStore(RedisOnlineStoreConfig(url=args.redis, key_prefix=prefix)),
        }
        client = redis.Redis.from_url(args.redis)
        table: list[list[Any]] = []
        blob_bytes: list[int] = []
        try:
            for store in stores.values():
                write_states(store, runtime)
            with OnlineFeatures(project, stores["redis"]) as reader:
                # the peer's cache: the same values, computed once, as JSON per (user, product)
                cache = {}
                for e in entities:
                    values = reader.get(MODEL, [e], at)[0]
                    values.pop(MISSING)
                    cache[f"{prefix}:peer:{e['user_id']}:{e['product_id']}"] = json.dumps(values)
                client.mset(cache)
            for row in views:
                sample = [runtime[row.name].state_of(k) for k in runtime[row.name].keys()[:500]]
                blob_bytes.append(round(statistics.fmean(len(b) for b in sample)))

            for name, store in stores.items():
                table += measure(name, project, store, entities, at, args.calls, rng)
            names = list(cache)
            picks = iter(rng.choices(names, k=args.calls + 500))
            table.append(
                summary(
                    "peer: redis-py GET + json.loads of a cached dict",
                    timed(lambda: json.loads(client.get(next(picks))), args.calls),
                )
            )
        finally:
            for store in stores.values():
                store.close()
            stale = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for i in range(0, len(stale), 1000):
                client.delete(*stale[i : i + 1000])
            client.close()
    report(
        "online_read",
        f"Online reads of model {MODEL} (3 views, 20 features), µs per call ({args.calls:,} calls)",
        ["case", "p50 µs", "p99 µs", "mean µs", "CPU µs"],
        table,
        {
            "events": args.events,
            "calls": args.calls,
            "mean_state_bytes": dict(zip([v.name for v in views], blob_bytes, strict=True)),
        },
    )


if __name__ == "__main__":
    main()
