"""THE consistency proof: one definition, the same value online, offline and in the oracle.

A project built for the hard cases -- every aggregation function (count with and without a
column, sum, mean, min, max, last, count_distinct), ``where`` filters (``=``, ``IN``, ``OR``,
``IS NULL``), windows from 5 minutes to 30 days, hops from 1 minute to 1 hour, a window
that is not a whole number of hops, three views keyed by user, product and both -- gets a
stream with identical timestamps, events exactly on minute/hour/day and hop boundaries,
NULL values, int and float prices, out-of-order deliveries (5 s - 2 h late in the log,
many behind the watermark), events 35-45 days old arriving last (too old for the online
state, kept offline), exact duplicates, one key with thousands of events and keys with
one. It goes raw -> validator -> engine in three rounds (restarts from checkpoints in
between). Then for many sampled (key, t) within the online coverage -- at, just before and
just after events, a window (and a hop) after them, on boundaries --

    get_online_features(...)  ==  the offline store's training set (spine of those rows)  ==  oracle

for every feature, on the embedded pair (local log, SQLite, DuckDB) and on the scale-out
pair (Kafka, Redis, PostgreSQL). Integers equal exactly, floats within 1e-9 relative.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from rtml.backends.offline_store.arrow import normalize_spine
from rtml.core.aggregation import decode_key
from rtml.datagen import to_log_record
from rtml.features import at_iso, get_online_features
from rtml.offline import offline_store, training_plan
from rtml.project import RAW_EVENTS, Project
from rtml.services.engine import EngineService
from rtml.services.engine.stores import open_online
from rtml.services.validator import ValidatorService
from rtml.testing.engine import OracleReader, differences, valid_events
from rtml.timeutil import from_millis

pytestmark = pytest.mark.integration

SEC, MIN, HOUR, DAY = 1_000, 60_000, 3_600_000, 86_400_000
T0 = 1_569_888_000_000  # 2019-10-01T00:00:00Z: a multiple of every hop
SPAN = 3 * DAY
CLOCK = "2019-10-20T00:00:00Z"
SAMPLES = 500  # (key, t) rows checked per backend pair, each for every feature of 3 views

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["event_id", "event_time", "event_type", "user_id", "product_id"],
    "properties": {
        "event_id": {"type": "string"},
        "event_time": {"type": "string", "format": "date-time"},
        "event_type": {"type": "string", "enum": ["view", "cart", "purchase", "remove"]},
        "user_id": {"type": "integer"},
        "product_id": {"type": "integer"},
        "price": {"type": ["number", "null"]},
        "qty": {"type": ["integer", "null"]},
        "tag": {"type": ["string", "null"]},
    },
}
DEFINITIONS = """
from rtml import Aggregation, Entity, FeatureView, Label, Model, Source

user = Entity(name="user", join_keys=["user_id"])
product = Entity(name="product", join_keys=["product_id"])
events = Source(name="events", schema="event.schema.json", allowed_lateness="5m")
CART = "event_type = 'cart'"

u = FeatureView(name="u", entities=[user], source=events, aggregations=[
    Aggregation(function="count", windows=["5m", "1h", "1d"], hop="1m", name="n"),
    Aggregation(function="count", column="price", windows=["1h", "30d"], hop="1h", name="n_price"),
    Aggregation(function="count", where=CART, windows=["10m", "7d"], hop="1m", name="carts"),
    Aggregation(function="sum", column="qty", windows=["1h", "1d"], hop="1m", name="qty"),
    Aggregation(function="sum", column="price", where=CART, windows=["2h", "7d"], hop="1h", name="spent"),
    Aggregation(function="mean", column="price", windows=["15m", "3d"], hop="1m", name="avg"),
    Aggregation(function="min", column="price", windows=["1h", "30d"], hop="1h", name="lo"),
    Aggregation(function="max", column="qty", windows=["5m", "1d"], hop="5m", name="hi"),
    Aggregation(function="last", column="price", windows=["1h", "7d"], hop="1m", name="last_price"),
    Aggregation(function="last", column="tag", windows=["30d"], hop="1h", name="last_tag"),
    Aggregation(function="count_distinct", column="product_id", windows=["1h", "1d"], hop="1m",
                name="products"),
    Aggregation(function="count_distinct", column="tag", where="qty > 1 OR tag IS NULL", windows=["2d"],
                hop="1h", name="tags"),
    Aggregation(function="count", where="event_type IN ('view', 'remove')", windows=["90m"], hop="30m",
                name="browse"),
])
p = FeatureView(name="p", entities=[product], source=events, aggregations=[
    Aggregation(function="count", where="event_type = 'view'", windows=["1h", "1d"], hop="1m", name="views"),
    Aggregation(function="mean", column="price", windows=["7d"], hop="1h", name="price"),
    Aggregation(function="max", column="price", windows=["25m"], hop="10m", name="top"),
    Aggregation(function="count_distinct", column="user_id", windows=["1d"], hop="1h", name="users"),
])
up = FeatureView(name="up", entities=[user, product], source=events, aggregations=[
    Aggregation(function="count", where="event_type = 'view'", windows=["5m", "1h"], hop="1m", name="views"),
    Aggregation(function="last", column="qty", windows=["1d"], hop="1m", name="last_qty"),
    Aggregation(function="sum", column="price", windows=["1d"], hop="10m", name="spent"),
    Aggregation(function="min", column="qty", windows=["2h"], hop="30m", name="least"),
])
buys = Label(name="buys", source=events, entities=[user, product], prediction_where=CART,
             outcome_where="event_type = 'purchase'", horizon="1h")
m = Model(name="m", label=buys, features=[u, p, up])
"""
ENGINE = "engine: {batch_size: 700, poll_timeout: 20ms, exact_for: 2d, checkpoint_events: 3000}\n"


def make_project(root: Path, backends: str) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    name = f"consist-{uuid.uuid4().hex[:8]}"
    (root / "rtml.yaml").write_text(f"project: {name}\n{backends}validator: {{clock: '{CLOCK}'}}\n{ENGINE}")
    (root / "event.schema.json").write_text(json.dumps(SCHEMA))
    (root / "defs.py").write_text(DEFINITIONS)
    return Project.load(root, environ={})


def stamp(ts_ms: int) -> str:
    return from_millis(ts_ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hard_stream(seed: int = 3, n: int = 9000) -> list[dict[str, Any]]:
    """Events in delivery order, with the hard cases of the module's docstring."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        pick = rng.random()
        if pick < 0.25:  # exactly on a boundary
            unit = rng.choice([MIN, 5 * MIN, 10 * MIN, 30 * MIN, HOUR, DAY])
            ts = T0 + rng.randrange(0, SPAN // unit + 1) * unit
        elif pick < 0.35 and rows:  # the same time as an earlier event
            ts = rng.choice(rows)["ts"]
        else:
            ts = T0 + rng.randrange(0, SPAN)
        user = 1 if rng.random() < 0.25 else rng.randrange(2, 80)  # user 1: thousands of events
        rows.append(
            {
                "ts": ts,
                "event_id": f"e{rng.randrange(10**6):06d}-{i}",  # ids whose order breaks time ties
                "event_type": rng.choice(["view", "view", "cart", "purchase", "remove"]),
                "user_id": user,
                "product_id": rng.choice([10, 11, 12, 13, 14])
                if rng.random() < 0.8
                else rng.randrange(15, 60),
                "price": rng.choice([None, 1.5, 2.25, 10, 99.99, round(rng.uniform(0, 100), 3)]),
                "qty": rng.choice([None, 1, 2, 3, 7]),
                "tag": rng.choice([None, "a", "b", "zz", "é"]),
            }
        )
    for j in range(30):  # keys with a single event
        rows.append({"ts": T0 + rng.randrange(0, SPAN), "event_id": f"lonely-{j}", "event_type": "cart",
                     "user_id": 1000 + j, "product_id": 500 + j, "price": 3.0, "qty": 1, "tag": "x"})  # fmt: skip
    rows.sort(key=lambda r: r["ts"])
    order = [
        (r["ts"] + (rng.randrange(5 * SEC, 2 * HOUR) if rng.random() < 0.15 else 0), k)
        for k, r in enumerate(rows)
    ]
    delivered = [rows[k] for _, k in sorted(order)]  # out of order: 15% delivered 5 s - 2 h late
    for j in range(60):  # 35-45 days old, arriving last: too old for the online state
        old = dict(rng.choice(rows), event_id=f"ancient-{j}", ts=T0 - rng.randrange(35 * DAY, 45 * DAY))
        delivered.append(old)
    for k in sorted(rng.sample(range(len(delivered) - 200), 40), reverse=True):
        # an exact duplicate a little later (within the validator's dedupe horizon): dropped
        delivered.insert(k + rng.randrange(1, 100), dict(delivered[k]))
    return delivered


def raw_line(row: dict[str, Any]) -> bytes:
    event = {k: v for k, v in row.items() if k != "ts"}
    event["event_time"] = stamp(row["ts"])
    return json.dumps(event).encode()


def run_pipeline(project: Project, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Three rounds of: produce a third of the stream, validate it, run the engine to idle."""
    logger = logging.getLogger(f"test.consistency.{uuid.uuid4().hex[:6]}")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    totals = {"late": 0, "dropped": 0, "applied": 0}
    cut = len(rows) // 3
    for part in (rows[:cut], rows[cut : 2 * cut], rows[2 * cut :]):
        log = project.event_log()
        try:
            log.produce(project.topic(RAW_EVENTS), [to_log_record(raw_line(r)) for r in part])
            log.flush()
        finally:
            log.close()
        ValidatorService(project, logger=logger).run(until_idle=True)
        stats = EngineService(project, logger=logger).run(until_idle=True)
        totals["late"] += stats.late
        totals["dropped"] += sum(stats.dropped.values())
        totals["applied"] += stats.events
    return totals


def sample_rows(project: Project, oracle: OracleReader, rng: random.Random) -> list[tuple[int, int, int]]:
    """(user, product, t) rows with t at hard places and within the online coverage of all
    three views' states for those keys."""
    online = open_online(project)
    try:
        pairs = oracle.keys("up")
        pairs = [pr for pr in pairs if pr[0] == 1][:40] + [pr for pr in pairs if pr[0] >= 1000] + pairs
        events = [e for key in oracle.keys("up") for e in oracle.by_key["up"][key]]
        spans = sorted(
            {int(f.window.total_seconds() * 1000) for v in oracle.views.values() for f in v.features}
        )
        hops = sorted(
            {int(a.hop_span.total_seconds() * 1000) for v in oracle.views.values() for a in v.aggregations}
        )
        out: list[tuple[int, int, int]] = []
        while len(out) < SAMPLES:
            user, product = rng.choice(pairs[:200]) if rng.random() < 0.5 else rng.choice(pairs)
            if rng.random() < 0.05:
                product = 999_999  # a pair, and a product, with no events at all
            covered = 0
            for view, key in (("u", (user,)), ("p", (product,)), ("up", (user, product))):
                blob = online.read(view, [key])[0]
                if blob is not None:
                    covered = max(covered, decode_key(blob).covered_from or 0)
            mine = oracle.by_key["up"].get((user, product)) or events
            ts = rng.choice(mine).ts_ms
            pick = rng.random()
            if pick < 0.3:
                t = ts + rng.choice([0, 1, -1])
            elif pick < 0.6:
                t = ts + rng.choice(spans) + rng.choice([0, 0, 1, -1, rng.choice(hops)])
            elif pick < 0.8:
                unit = rng.choice([MIN, HOUR, DAY])
                t = (ts // unit + rng.choice([0, 1])) * unit
            else:
                t = ts + rng.randrange(0, 2 * DAY)
            if t >= covered:
                out.append((user, product, t))
        return out
    finally:
        online.close()


def check_consistency(project: Project) -> None:
    rows = hard_stream()
    totals = run_pipeline(project, rows)
    events = valid_events(project)
    assert len(events) == len({e.event_id for e in events}) == len(rows) - 40  # duplicates dropped
    assert totals["applied"] == len(events)
    assert totals["late"] > 100 and totals["dropped"] > 0, totals
    model = project.definitions.model("m")
    oracle = OracleReader(model.feature_views, events)
    samples = sample_rows(project, oracle, random.Random(11))
    spine = pa.table(
        {
            "user_id": [u for u, _, _ in samples],
            "product_id": [p for _, p, _ in samples],
            "ts_ms": [t for _, _, t in samples],
        }
    )
    plan = training_plan(project, "m")
    normalized, _ = normalize_spine(spine, plan)
    store = offline_store(project)
    try:
        offline = store.training_set(plan, spine=normalized, include_incomplete=True).to_pylist()
    finally:
        store.close()
    by_row = {r["spine_row"]: r for r in offline}
    assert len(by_row) == len(samples)
    online_store = open_online(project)
    checked = 0
    try:
        for n, (user, product, t) in enumerate(samples):
            entity = {"user_id": user, "product_id": product}
            online = get_online_features(
                project, ["u", "p", "up"], [entity], at=at_iso(t), store=online_store
            )[0]
            for view in model.feature_views:
                key = tuple(entity[k] for k in view.join_keys)
                want = oracle.read(view.name, key, t)
                got_online = {f: online[f"{view.name}__{f}"] for f in want}
                got_offline = {f: by_row[n][f"{view.name}__{f}"] for f in want}
                where = (view.name, key, stamp(t))
                assert not differences(got_online, want), ("online", *where, differences(got_online, want))
                assert not differences(got_offline, want), ("offline", *where, differences(got_offline, want))
                checked += len(want)
    finally:
        online_store.close()
    print(
        f"\n{project.config.project}: {len(events)} events, {totals}; {len(samples)} (key, t) rows, {checked} values"
    )


def test_consistency_embedded_duckdb(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", "event_log: {type: local}\n")
    check_consistency(project)


@pytest.fixture
def scale_out(kafka_bootstrap: str, redis_url: str, pg_url: str, start_hint: str) -> Iterator[str]:
    import psycopg
    import redis

    from rtml.backends.event_log.config import KafkaEventLogConfig
    from rtml.backends.event_log.kafka import KafkaEventLog
    from rtml.errors import BackendUnavailableError

    suffix = uuid.uuid4().hex[:8]
    try:
        KafkaEventLog(KafkaEventLogConfig(bootstrap_servers=kafka_bootstrap)).close()
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
        psycopg.connect(pg_url, connect_timeout=3).close()
    except (BackendUnavailableError, redis.RedisError, psycopg.Error) as exc:
        pytest.fail(f"Kafka, Redis and PostgreSQL are needed: {exc}. Fix: {start_hint}")
    yield (
        f"event_log: {{type: kafka, bootstrap_servers: '{kafka_bootstrap}', partitions: 3}}\n"
        f"online_store: {{type: redis, url: '{redis_url}', key_prefix: 'rtml-test-{suffix}'}}\n"
        f"offline_store: {{type: postgres, url: '{pg_url}', namespace: rtml_test_{suffix}}}\n"
    )
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"rtml-test-{suffix}*", count=1000):
        client.delete(key)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS rtml_test_{suffix} CASCADE")
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    ours = [t for t in admin.list_topics(timeout=10).topics if t.startswith("consist-")]
    if ours:
        for future in admin.delete_topics(ours, operation_timeout=10).values():
            future.result(timeout=30)


@pytest.mark.kafka
def test_consistency_redis_postgres(tmp_path: Path, scale_out: str) -> None:
    project = make_project(tmp_path / "p", scale_out)
    check_consistency(project)


def test_the_stream_has_the_hard_cases() -> None:
    rows = hard_stream()
    times = [r["ts"] for r in rows]
    assert len(times) - len(set(times)) > 500  # identical timestamps
    assert sum(1 for t in times if t % HOUR == 0) > 100  # on hour (and so hop) boundaries
    assert sum(1 for t in times if t % DAY == 0) > 5
    assert sum(1 for r in rows if r["user_id"] == 1) > 2000  # a key with thousands
    assert sum(1 for a, b in zip(times, times[1:], strict=False) if b < a) > 500  # out of order
    assert datetime.fromtimestamp(min(times) / 1000, UTC) < datetime(2019, 8, 28, tzinfo=UTC)  # ancient
