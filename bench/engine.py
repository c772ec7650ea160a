"""Feature engine end to end: valid topic -> online state + offline store, against a
hand-written peer in the same run; and feature freshness on a paced live stream.

    python bench/engine.py [--events 300000] [--live-rate 10000 2000] [--live-seconds 20] [--skip-kafka]

* throughput: ``generate(N, seed=1, dirty_rate=0)`` validated once (the validator's own
  code, so the records are exactly what ``rtml run validator`` writes) and produced to the
  valid topic beforehand; then ``EngineService.run(until_idle=True)`` on the example's 3
  views (18 features) from a cold start. Events/s = events / wall time of the run (log
  reads, decoding, aggregation, state blobs online, offline appends, checkpoints, start-up
  and the idle polls at the end); "busy" leaves out the log reads and idle polls.
  (a) embedded: local log, SQLite online store, DuckDB offline store;
  (b) scale-out: Kafka (3 partitions), Redis, PostgreSQL.
* peer: a hand-written loop over the same topic (confluent-kafka directly on Kafka, the
  port's consumer on the local log): msgspec decode, then per event and view, one
  ``HINCRBY`` per count aggregation whose ``where`` holds, on a per-(view, key) hash with
  one field per (aggregation, hop tile) -- pipelined, executed once per poll. It computes
  hop-tile counts only (no exact head, no mean/last/count_distinct, no offline copy, no
  checkpoint, nothing exactly once), so it is an upper bound for a naive design.
* freshness: a separate process produces valid records stamped with the wall clock at
  ``--live-rate`` events/s for ``--live-seconds`` into the local log while the engine runs
  (SQLite + DuckDB); freshness = time the event's state blobs became readable online -
  event time, as the engine measures it (``rtml_engine_freshness_seconds``); the peer's
  = time its pipeline returned - event time, for the same stream.

Prints a table and writes ``bench/results/engine.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from common import report

from rtml.backends.event_log.base import LogRecord
from rtml.core.sqleval import compile_filter
from rtml.datagen import generate, to_log_record
from rtml.project import VALID_EVENTS, Project, init_project
from rtml.services.engine import EngineService
from rtml.services.validator.factory import build_validator
from rtml.services.validator.routing import valid_record

KAFKA = os.environ.get("RTML_TEST_KAFKA", "127.0.0.1:9092")
REDIS = os.environ.get("RTML_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG = os.environ.get("RTML_TEST_PG_URL", "postgresql://rtml:rtml@127.0.0.1:5432/rtml")
CLOCK = "2019-10-20T00:00:00Z"


def quiet() -> logging.Logger:
    logger = logging.getLogger("bench.engine.quiet")
    logger.propagate = False
    logger.handlers[:] = [logging.NullHandler()]
    return logger


def make_project(root: Path, backends: str, engine: str = "") -> Project:
    init_project(root, force=True)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    (root / "rtml.yaml").write_text(f"project: {name}\n{backends}validator: {{clock: '{CLOCK}'}}\n{engine}")
    return Project.load(root, environ={})


def valid_records(project: Project, lines: list[bytes]) -> list[LogRecord]:
    """What the validator writes to the valid topic for ``lines``."""
    validator = build_validator(project, project.config.validator)
    out = []
    for i, (line, outcome) in enumerate(zip(lines, validator.validate_many(lines), strict=True)):
        raw = to_log_record(line)
        raw = LogRecord(value=raw.value, key=raw.key, headers=raw.headers, partition=0, offset=i)
        out.append(valid_record(raw, outcome))  # type: ignore[arg-type]
    return out


def produce(project: Project, records: list[LogRecord]) -> None:
    log = project.event_log()
    try:
        topic = project.topic(VALID_EVENTS)
        log.create_topic(topic)
        for i in range(0, len(records), 20_000):
            log.produce(topic, records[i : i + 20_000])
        log.flush()
    finally:
        log.close()


def run_engine(project: Project) -> dict[str, Any]:
    started = time.perf_counter()
    stats = EngineService(project, logger=quiet()).run(until_idle=True)
    wall = time.perf_counter() - started
    return {
        "events": stats.events,
        "wall_s": wall,
        "active_s": stats.active_seconds,
        "busy_s": stats.busy_seconds,
        "stats": stats,
    }


# -- the peer ---------------------------------------------------------------------------


class PeerCounts:
    """Per event and view: HINCRBY (view, key) (aggregation:tile) for each count aggregation."""

    def __init__(self, project: Project, prefix: str) -> None:
        import redis

        self.client = redis.Redis.from_url(REDIS)
        self.prefix = prefix
        self.specs = []
        for view in project.definitions.feature_views.values():
            aggs = []
            for agg in view.aggregations:
                if agg.function != "count":
                    continue
                keep = compile_filter(agg.where_expression) if agg.where_expression is not None else None
                eq = _simple_equality(agg.where)
                aggs.append((agg.name, int(agg.hop_span.total_seconds() * 1000), keep, eq))
            self.specs.append((view.name, view.join_keys, aggs))
        self.decoder = msgspec.json.Decoder(dict[str, Any])

    def apply(self, values: list[bytes], times: list[int]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for value, ts in zip(values, times, strict=True):
            row = self.decoder.decode(value)
            for view, keys, aggs in self.specs:
                name = f"{self.prefix}:{view}:" + ":".join(str(row.get(k)) for k in keys)
                for agg, hop, keep, eq in aggs:
                    if eq is not None:
                        if row.get(eq[0]) != eq[1]:
                            continue
                    elif keep is not None and not keep(row):
                        continue
                    pipe.hincrby(name, f"{agg}:{ts // hop}", 1)
        pipe.execute()

    def clear(self) -> None:
        for key in self.client.scan_iter(match=f"{self.prefix}:*", count=5000):
            self.client.delete(key)


def _simple_equality(where: str | None) -> tuple[str, str] | None:
    """``column = 'value'`` as (column, value): the peer's fast path (a hand-written loop would)."""
    if where is None or where.count("=") != 1 or "'" not in where:
        return None
    column, value = (part.strip() for part in where.split("="))
    return (column, value.strip("'")) if column.isidentifier() else None


def run_peer_kafka(project: Project, total: int, peer: PeerCounts) -> float:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"bench-peer-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([project.topic(VALID_EVENTS)])
    seen = 0
    started = time.perf_counter()
    while seen < total:
        messages = [m for m in consumer.consume(5000, 1.0) if m.error() is None]
        if not messages:
            continue
        peer.apply([m.value() for m in messages], [m.timestamp()[1] for m in messages])
        consumer.commit(asynchronous=False)
        seen += len(messages)
    wall = time.perf_counter() - started
    consumer.close()
    return wall


def run_peer_log(project: Project, total: int, peer: PeerCounts) -> float:
    log = project.event_log()
    consumer = log.consumer([project.topic(VALID_EVENTS)], f"bench-peer-{uuid.uuid4().hex[:6]}")
    seen = 0
    started = time.perf_counter()
    while seen < total:
        records = consumer.poll(20_000, 1.0)
        if records:
            peer.apply([r.value for r in records], [r.timestamp_ms or 0 for r in records])
            consumer.commit()
            seen += len(records)
    wall = time.perf_counter() - started
    consumer.close()
    log.close()
    return wall


# -- freshness --------------------------------------------------------------------------


def live_producer(root: str, rate: int, seconds: float, templates: str) -> None:
    """(subprocess) Valid records stamped with the wall clock, ``rate``/s, in 10 ms chunks."""
    project = Project.load(root, environ={})
    rows = msgspec.json.decode(Path(templates).read_bytes())
    log = project.event_log()
    topic = project.topic(VALID_EVENTS)
    encoder = msgspec.json.Encoder()
    chunk = max(1, rate // 100)
    start = time.perf_counter()
    sent = 0
    while time.perf_counter() - start < seconds:
        due = int((time.perf_counter() - start) * rate)
        if due <= sent:
            time.sleep(0.001)
            continue
        n = min(due - sent, chunk * 5)
        now_ms = time.time_ns() // 1_000_000
        stamp = (
            datetime.fromtimestamp(now_ms / 1000, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        records = []
        for i in range(sent, sent + n):
            row = dict(rows[i % len(rows)], event_id=f"live-{i}", event_time=stamp)
            records.append(
                LogRecord(
                    value=encoder.encode(row),
                    key=str(row["user_id"]).encode(),
                    headers=(("rtml.event_id", row["event_id"].encode()),),
                    timestamp_ms=now_ms,
                )
            )
        log.produce(topic, records)
        sent += n
    log.close()
    print(sent)


def freshness(project: Project, rate: int, seconds: float, lines: list[bytes]) -> dict[str, Any]:
    templates = project.data_dir / "templates.json"
    project.data_dir.mkdir(parents=True, exist_ok=True)
    rows = [msgspec.json.decode(r.value) for r in valid_records(project, lines[:5000])]
    templates.write_bytes(msgspec.json.encode(rows))
    stop = threading.Event()
    service = EngineService(project, logger=quiet())
    box: dict[str, Any] = {}
    engine = threading.Thread(target=lambda: box.update(stats=service.run(stop=stop)), daemon=True)
    engine.start()
    time.sleep(2.0)  # start-up
    command = [
        sys.executable,
        __file__,
        "--produce-live",
        str(project.root),
        str(rate),
        str(seconds),
        str(templates),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    time.sleep(1.0)
    stop.set()
    engine.join(timeout=60)
    stats = box["stats"]
    sent = int(done.stdout.strip().splitlines()[-1])
    return {
        "sent": sent,
        "events": stats.events,
        "samples": stats.freshness.count if stats.freshness else 0,
        "p50_ms": stats.freshness_p50_ms,
        "p99_ms": stats.freshness_p99_ms,
        "checkpoints": stats.checkpoints,
        "checkpoint_s": stats.checkpoint_seconds,
    }


def peer_freshness(project: Project, rate: int, seconds: float, templates: Path) -> dict[str, Any]:
    """The peer on the same kind of live stream (a fresh topic)."""
    peer = PeerCounts(project, f"bench-peer-live-{uuid.uuid4().hex[:6]}")
    log = project.event_log()
    consumer = log.consumer([project.topic(VALID_EVENTS)], f"bench-peer-live-{uuid.uuid4().hex[:6]}")
    lags: list[np.ndarray] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            records = consumer.poll(20_000, 0.2)
            if not records:
                continue
            times = np.asarray([r.timestamp_ms or 0 for r in records], dtype=np.int64)
            peer.apply([r.value for r in records], times.tolist())
            consumer.commit()
            visible = time.time_ns() // 1_000_000
            lags.append(visible - times)

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    time.sleep(1.0)
    command = [
        sys.executable,
        __file__,
        "--produce-live",
        str(project.root),
        str(rate),
        str(seconds),
        str(templates),
    ]
    subprocess.run(command, capture_output=True, text=True, check=True)
    time.sleep(1.0)
    stop.set()
    worker.join(timeout=30)
    consumer.close()
    log.close()
    peer.clear()
    all_lags = np.concatenate(lags) if lags else np.zeros(1)
    return {"p50_ms": float(np.percentile(all_lags, 50)), "p99_ms": float(np.percentile(all_lags, 99))}


# -- main -------------------------------------------------------------------------------


def engine_row(setup: str, ours: dict[str, Any]) -> list[Any]:
    """Wall: the whole run (start-up, group join, idle polls at the end); steady: from the
    first batch to the end of the last (log reads included)."""
    n = ours["events"]
    return [setup, "rtml engine", n, round(n / ours["wall_s"]), round(n / ours["active_s"]), "-", "-"]


def peer_row(setup: str, n: int, wall: float) -> list[Any]:
    return [setup, "peer loop", n, round(n / wall), round(n / wall), "-", "-"]


def scale_out_backends(suffix: str) -> str:
    return (
        f"event_log: {{type: kafka, bootstrap_servers: '{KAFKA}', partitions: 3}}\n"
        f"online_store: {{type: redis, url: '{REDIS}', key_prefix: 'bench-{suffix}'}}\n"
        f"offline_store: {{type: postgres, url: '{PG}', namespace: bench_{suffix}}}\n"
    )


def cleanup_scale_out(project: Project, suffix: str) -> None:
    import psycopg
    import redis
    from confluent_kafka.admin import AdminClient

    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(match=f"bench-{suffix}*", count=5000):
        client.delete(key)
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS bench_{suffix} CASCADE")
    admin = AdminClient({"bootstrap.servers": KAFKA})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(project.config.project + ".")]
    for future in admin.delete_topics(topics, operation_timeout=10).values():
        future.result(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--live-rate", type=int, nargs="+", default=[10_000, 2_000])
    parser.add_argument("--live-seconds", type=float, default=20.0)
    parser.add_argument("--skip-kafka", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rtml-bench-engine-"))
    lines = generate(args.events, seed=1, dirty_rate=0).lines
    rows: list[list[Any]] = []
    extra: dict[str, Any] = {"events": args.events}
    try:
        # (a) embedded
        embedded = make_project(work / "embedded", "event_log: {type: local}\n")
        records = valid_records(embedded, lines)
        produce(embedded, records)
        ours = run_engine(embedded)
        peer = PeerCounts(embedded, f"bench-peer-{uuid.uuid4().hex[:6]}")
        peer_wall = run_peer_log(embedded, len(records), peer)
        peer.clear()
        rows.append(engine_row("embedded: local log -> SQLite + DuckDB", ours))
        rows.append(peer_row("embedded: local log -> Redis", len(records), peer_wall))
        extra["embedded"] = {k: v for k, v in ours.items() if k != "stats"} | {
            "stats": ours["stats"].as_dict()
        }
        # (b) scale-out
        if not args.skip_kafka:
            suffix = uuid.uuid4().hex[:8]
            scale = make_project(work / "scale", scale_out_backends(suffix))
            try:
                produce(scale, records)
                ours = run_engine(scale)
                peer = PeerCounts(scale, f"bench-peer-{suffix}")
                peer_wall = run_peer_kafka(scale, len(records), peer)
                peer.clear()
                rows.append(engine_row("scale-out: Kafka (3 partitions) -> Redis + PostgreSQL", ours))
                rows.append(peer_row("scale-out: Kafka (3 partitions) -> Redis", len(records), peer_wall))
                extra["scale_out"] = {k: v for k, v in ours.items() if k != "stats"} | {
                    "stats": ours["stats"].as_dict()
                }
            finally:
                cleanup_scale_out(scale, suffix)
        # freshness, at each live rate
        extra["freshness"] = {}
        for rate in args.live_rate:
            live = make_project(work / f"live-{rate}", "event_log: {type: local}\n")
            fresh = freshness(live, rate, args.live_seconds, lines)
            peer_live = make_project(work / f"peer-live-{rate}", "event_log: {type: local}\n")
            peer_fresh = peer_freshness(peer_live, rate, args.live_seconds, live.data_dir / "templates.json")
            label = f"live {rate:,}/s"
            rows.append([f"{label}: local log -> SQLite + DuckDB", "rtml engine", fresh["events"], "-", "-",
                         round(fresh["p50_ms"], 1), round(fresh["p99_ms"], 1)])  # fmt: skip
            rows.append([f"{label}: local log -> Redis", "peer loop", fresh["sent"], "-", "-",
                         round(peer_fresh["p50_ms"], 1), round(peer_fresh["p99_ms"], 1)])  # fmt: skip
            extra["freshness"][str(rate)] = {"engine": fresh, "peer": peer_fresh}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(
        "engine",
        f"Feature engine, example project (3 views, 18 features), {args.events:,} events",
        ["setup", "who", "events", "events/s wall", "events/s steady", "fresh p50 ms", "fresh p99 ms"],
        rows,
        extra,
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--produce-live":
        live_producer(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    else:
        main()
