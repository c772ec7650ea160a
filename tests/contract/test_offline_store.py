"""The offline store contract, run against every backend: DuckDB (a file) and PostgreSQL
(the real server of ``scripts/services.sh``, or ``RTML_TEST_PG_URL``; unreachable FAILS
the test, it never skips).

The training sets are held to the brute-force oracle (:mod:`rtml.testing.training`):
every feature of every spine row, the label, the on-demand features -- on the
e-commerce example's generated stream and on a project built for the hard cases
(identical timestamps, events on hop and window boundaries, late arrivals, keys with
one event, NULL columns, a window that is not a whole number of hops, every function).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from rtml.backends.offline_store import (
    DuckDbOfflineStoreConfig,
    OfflineStore,
    PostgresOfflineStoreConfig,
    StoredEvent,
    open_offline_store,
)
from rtml.core.validation import Valid, Validator
from rtml.datagen import generate
from rtml.errors import BackendUnavailableError
from rtml.offline import build_training_set, event_tables, load_events
from rtml.project import Project
from rtml.testing import example_project
from rtml.testing.oracle import OracleEvent
from rtml.testing.training import SpinePoint, expected_rows, label_spine, mismatches
from rtml.timeutil import parse_timestamp, to_millis

PG_URL = os.environ.get("RTML_TEST_PG_URL", "postgresql://rtml:rtml@127.0.0.1:5432/rtml")
POSTGRES = pytest.param("postgres", marks=pytest.mark.integration)
BACKENDS = ["duckdb", POSTGRES]


def _drop_namespace(namespace: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {namespace} CASCADE")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OfflineStore]:
    namespace = f"rtml_test_{uuid.uuid4().hex[:12]}"
    config: DuckDbOfflineStoreConfig | PostgresOfflineStoreConfig
    if request.param == "postgres":
        config = PostgresOfflineStoreConfig(url=PG_URL, namespace=namespace)
    else:
        config = DuckDbOfflineStoreConfig(path=tmp_path / "store" / "offline.duckdb")
    opened = open_offline_store(config)
    yield opened
    opened.close()
    if request.param == "postgres":
        _drop_namespace(namespace)


# -- the hard-cases project -------------------------------------------------------------
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["event_id", "event_time", "kind", "account_id"],
    "properties": {
        "event_id": {"type": "string"},
        "event_time": {"type": "string", "format": "date-time"},
        "kind": {"type": "string", "enum": ["view", "cart", "buy"]},
        "account_id": {"type": "integer"},
        "item_id": {"type": ["integer", "null"]},
        "amount": {"type": ["number", "null"]},
        "qty": {"type": ["integer", "null"]},
        "tag": {"type": ["string", "null"]},
    },
}
DEFINITIONS = """
from rtml import Aggregation, Entity, FeatureView, Label, Model, OnDemandFeature, Source

account = Entity(name="account", join_keys=["account_id"])
item = Entity(name="item", join_keys=["item_id"])
events = Source(name="events", schema="event.schema.json")

acct = FeatureView(name="acct", entities=[account], source=events, aggregations=[
    Aggregation(function="count", windows=["1h", "90m", "1d"], hop="1h", name="n"),
    Aggregation(function="count", column="amount", windows=["1h"], hop="10m", name="n_amount"),
    Aggregation(function="sum", column="amount", where="kind = 'buy'", windows=["1h", "1d"], hop="10m"),
    Aggregation(function="sum", column="qty", windows=["2h"], hop="30m"),
    Aggregation(function="mean", column="amount", windows=["2h"], hop="30m"),
    Aggregation(function="min", column="amount", windows=["1d"], hop="1h"),
    Aggregation(function="max", column="amount", windows=["25m"], hop="10m"),
    Aggregation(function="last", column="tag", windows=["1h", "1d"], hop="10m"),
    Aggregation(function="last", column="amount", where="kind <> 'view'", windows=["3h"], hop="1h"),
    Aggregation(function="count_distinct", column="item_id", windows=["1h", "1d"], hop="10m"),
])
pair = FeatureView(name="pair", entities=[account, item], source=events, aggregations=[
    Aggregation(function="count", where="kind = 'view'", windows=["30m"], hop="5m", name="views"),
])
ratio = OnDemandFeature(name="ratio", request={"amount": "double"},
                        expression="amount / NULLIF(acct__mean_amount_2h, 0)")
busy = OnDemandFeature(name="busy", expression="acct__n_1h * 2 + pair__views_30m")
buys = Label(name="buys", source=events, entities=[account, item], prediction_where="kind = 'cart'",
             outcome_where="kind = 'buy'", horizon="30m")
hard = Model(name="hard", label=buys, features=[acct, pair, ratio, busy])
"""
T0 = datetime(2024, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def hard_project(root: Path) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "rtml.yaml").write_text("project: hard\n")
    (root / "event.schema.json").write_text(json.dumps(SCHEMA))
    (root / "defs.py").write_text(DEFINITIONS)
    return Project.load(root, environ={})


def _event(n: int, when: datetime, kind: str, account: int, **fields: Any) -> dict[str, Any]:
    stamp = when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"event_id": f"e{n:05d}", "event_time": stamp, "kind": kind, "account_id": account, **fields}


def hard_events() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(first batch, late batch): hand-placed hard cases plus a seeded random mix."""
    import random

    rnd = random.Random(7)
    at = T0 + 10 * HOUR  # a whole hour: a hop and window boundary for every aggregation
    hand = [
        # identical timestamps: three events at `at`, a cart among them (sees none of them)
        _event(1, at, "view", 1, item_id=1, amount=5.0, qty=1, tag="b"),
        _event(2, at, "buy", 1, item_id=1, amount=7.0, qty=2, tag="a"),
        _event(3, at, "cart", 1, item_id=1, amount=9.0, qty=None, tag=None),
        # exactly one window/hop before a later cart: in [floor(t - w, h), t)
        _event(4, at - HOUR, "view", 1, item_id=2, amount=None, qty=3, tag="c"),
        _event(5, at - timedelta(minutes=90), "view", 1, item_id=2, amount=2.5, tag="d"),
        _event(6, at + timedelta(minutes=30), "cart", 1, item_id=2, amount=3.0, qty=1, tag=None),
        _event(7, at + timedelta(minutes=30, milliseconds=1), "buy", 1, item_id=2, amount=3.0),
        # the tie-break of `last`: same time, the larger event_id wins
        _event(9, at + 2 * HOUR, "buy", 1, item_id=3, amount=1.0, tag="x"),
        _event(8, at + 2 * HOUR, "buy", 1, item_id=3, amount=2.0, tag="y"),
        _event(10, at + 2 * HOUR + timedelta(seconds=1), "cart", 1, item_id=3, amount=4.0),
        # a key with one event (and a cart with no history at all)
        _event(11, at + 3 * HOUR, "cart", 99, item_id=9, amount=1.0),
        # all-NULL values in a window: sum -> 0, mean/min/max -> NULL, count(col) -> 0
        _event(12, at + 5 * HOUR, "view", 2, item_id=None, amount=None, qty=None, tag=None),
        _event(13, at + 5 * HOUR + timedelta(minutes=1), "cart", 2, item_id=4, amount=None),
        # the last events: their label horizon reaches past the end of the stream
        _event(14, T0 + 60 * HOUR, "cart", 3, item_id=1, amount=1.0),
        _event(15, T0 + 60 * HOUR + timedelta(minutes=10), "view", 3, item_id=2, amount=1.0),
    ]
    spread = []
    for n in range(100, 420):
        when = T0 + timedelta(minutes=rnd.choice([0, 5, 10, 30, 59, 60]) + 10 * rnd.randrange(0, 280))
        when += timedelta(milliseconds=rnd.choice([0, 0, 1, 999]))
        spread.append(
            _event(
                n,
                when,
                rnd.choice(["view", "view", "cart", "buy"]),
                rnd.randrange(1, 5),
                item_id=rnd.choice([1, 2, 3, None]),
                amount=rnd.choice([None, 1.5, 2.25, 10.0, 99.99]),
                qty=rnd.choice([None, 1, 2, 5]),
                tag=rnd.choice([None, "a", "b", "zz", "é"]),
            )
        )
    late = [e for e in spread if e["event_time"] < (T0 + 20 * HOUR).isoformat()[:19]][:40]
    first = hand + [e for e in spread if e not in late]
    return first, late


def _oracle(rows: list[dict[str, Any]]) -> list[OracleEvent]:
    return [OracleEvent(to_millis(parse_timestamp(r["event_time"])), r["event_id"], r) for r in rows]


def _lines(rows: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(r).encode() for r in rows]


def _check(table: pa.Table, expected: list[dict[str, Any]]) -> None:
    problems = mismatches(table.to_pylist(), expected)
    assert not problems, "\n".join(problems[:20])


# -- appends, reads, lineage ------------------------------------------------------------
def test_append_is_idempotent_by_event_id(store: OfflineStore, tmp_path: Path) -> None:
    project = hard_project(tmp_path / "p")
    table = event_tables(project)["events"]
    first, _ = hard_events()
    events = [StoredEvent(o.event_id, o.ts_ms, o.row) for o in _oracle(first[:10])]
    assert store.append(table, events) == 10
    again = [*events, StoredEvent("new1", events[0].ts_ms, events[0].row), StoredEvent("new1", 1, {})]
    assert store.append(table, again) == 1  # stored ids and a repeat within the batch: kept once
    assert store.append(table, []) == 0
    stats = store.stats(table)
    assert stats.rows == 11
    assert stats.first_ts_ms == min(e.ts_ms for e in events)
    assert stats.last_ts_ms == max(e.ts_ms for e in events)


def test_read_back_typed_and_ordered(store: OfflineStore, tmp_path: Path) -> None:
    project = hard_project(tmp_path / "p")
    table = event_tables(project)["events"]
    first, _ = hard_events()
    store.append(table, [StoredEvent(o.event_id, o.ts_ms, o.row) for o in _oracle(first[:13])])
    back = store.read(table)
    rows = back.to_pylist()
    assert [r["ts_ms"] for r in rows] == sorted(r["ts_ms"] for r in rows)
    one = next(r for r in rows if r["event_id"] == "e00003")
    assert one["kind"] == "cart" and one["account_id"] == 1 and one["amount"] == 9.0
    assert one["qty"] is None and one["tag"] is None
    assert one["event_time"] == T0 + 10 * HOUR
    assert back.schema.field("amount").type == pa.float64()
    assert back.schema.field("account_id").type == pa.int64()
    start = to_millis(T0 + 10 * HOUR)
    window = store.read(table, start_ms=start, end_ms=start + 1)
    assert sorted(window.column("event_id").to_pylist()) == ["e00001", "e00002", "e00003"]


def test_empty_store_has_no_rows(store: OfflineStore, tmp_path: Path) -> None:
    table = event_tables(hard_project(tmp_path / "p"))["events"]
    stats = store.stats(table)
    assert (stats.rows, stats.first_ts_ms, stats.last_ts_ms) == (0, None, None)
    assert store.read(table).num_rows == 0


# -- training sets against the oracle ---------------------------------------------------
def test_hard_cases_equal_the_oracle(store: OfflineStore, tmp_path: Path) -> None:
    project = hard_project(tmp_path / "p")
    first, late = hard_events()
    load_events(project, _lines(first), store=store)
    load_events(project, _lines(late), store=store)  # late arrivals: stored like any other
    model = project.definitions.model("hard")
    events = _oracle(first + late)
    expected = expected_rows(model, events, label_spine(model, events))
    got = build_training_set(project, "hard", store=store, include_incomplete=True)
    _check(got, expected)
    assert got.column_names[:4] == ["event_id", "account_id", "item_id", "event_time"]
    assert {"busy", "ratio", "label", "acct__last_tag_1d"} <= set(got.column_names)
    # default: rows whose horizon is not complete are dropped
    complete = build_training_set(project, "hard", store=store)
    assert complete.num_rows == sum(1 for r in expected if r["label"] is not None) < got.num_rows
    assert None not in complete.column("label").to_pylist()


def test_user_spine_at_boundaries_equals_the_oracle(store: OfflineStore, tmp_path: Path) -> None:
    project = hard_project(tmp_path / "p")
    first, late = hard_events()
    load_events(project, _lines(first + late), store=store)
    model = project.definitions.model("hard")
    times = [T0 + 10 * HOUR + timedelta(minutes=m) for m in (0, 10, 30, 60, 90, 125)]
    times.append(T0 + 10 * HOUR + timedelta(minutes=30, milliseconds=1))
    keys = [(1, 1), (1, 2), (2, 4), (7, 1)]  # account 7 has no events at all
    spine = pa.table(
        {
            "account_id": [a for a, _ in keys for _ in times],
            "item_id": [i for _, i in keys for _ in times],
            "event_time": [t for _ in keys for t in times],
            "amount": [2.0 for _ in keys for _ in times],
        }
    )
    got = build_training_set(project, "hard", spine, store=store, include_incomplete=True)
    points = [
        SpinePoint({"account_id": a, "item_id": i}, to_millis(t), {"amount": 2.0})
        for a, i in keys
        for t in times
    ]
    order = sorted(range(len(points)), key=lambda n: (points[n].t_ms, n))
    expected = expected_rows(model, _oracle(first + late), [points[n] for n in order])
    _check(got, expected)
    assert got.column("spine_row").to_pylist() == order


def test_example_model_equals_the_oracle(store: OfflineStore, tmp_path: Path) -> None:
    project = example_project(tmp_path / "shop")
    stream = generate(6000, seed=5, dirty_rate=0.03)
    summary = load_events(project, stream.lines, store=store)
    source = project.definitions.sources["events"]
    validator = Validator.build(source, project.definitions.schemas["events"].document)
    firsts: dict[str, OracleEvent] = {}
    for outcome in validator.validate_many(stream.lines):
        if isinstance(outcome, Valid) and outcome.event_id not in firsts:
            firsts[outcome.event_id] = OracleEvent(outcome.event_time_ms, outcome.event_id, outcome.event)
    assert summary.invalid > 0 and summary.appended == len(firsts)  # each valid event once
    model = project.definitions.model("purchase_1h")
    events = list(firsts.values())
    expected = [r for r in expected_rows(model, events, label_spine(model, events)) if r["label"] is not None]
    got = build_training_set(project, "purchase_1h", store=store)
    _check(got, expected)
    assert got.num_rows > 300
    truth = {t.event_id: int(t.label) for t in stream.truth if t.horizon_complete}
    labels = dict(zip(got.column("event_id").to_pylist(), got.column("label").to_pylist(), strict=True))
    assert all(labels[e] == truth[e] for e in labels if e in truth)  # the generator's own truth


# -- a store that is down ---------------------------------------------------------------
def test_postgres_down_fails_fast(tmp_path: Path) -> None:
    store = open_offline_store(PostgresOfflineStoreConfig(url="postgresql://rtml:rtml@127.0.0.1:1/rtml"))
    table = event_tables(hard_project(tmp_path / "p"))["events"]
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="unavailable"):
        store.stats(table)
    assert time.monotonic() - started < 5
    store.close()


def test_duckdb_held_by_another_process_fails_after_the_lock_timeout(tmp_path: Path) -> None:
    path = tmp_path / "offline.duckdb"
    table = event_tables(hard_project(tmp_path / "p"))["events"]
    open_offline_store(DuckDbOfflineStoreConfig(path=path)).append(
        table, [StoredEvent("a", 1, {"kind": "view"})]
    )
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        store = open_offline_store(DuckDbOfflineStoreConfig(path=path, lock_timeout_s=0.5))
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="held by another process"):
            store.stats(table)
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()
    assert open_offline_store(DuckDbOfflineStoreConfig(path=path)).stats(table).rows == 1
