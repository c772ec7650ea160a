"""Online feature reads: the Python API, ``GET/POST /features`` and ``rtml features get``.

An aggregation runtime is built from a generated stream of the example project, its states
are written into each online store backend (as the engine does), and reads are held against
the brute-force oracle (``rtml.testing.oracle``).
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rtml.backends.online_store import Key, OnlineStore
from rtml.backends.online_store.config import (
    MemoryOnlineStoreConfig,
    RedisOnlineStoreConfig,
    SqliteOnlineStoreConfig,
)
from rtml.backends.online_store.factory import open_online_store
from rtml.backends.registry import open_backend
from rtml.cli.main import app as cli_app
from rtml.core.aggregation import Aggregator, EventBatch, NotCoveredError, StaleStateError, build, build_view
from rtml.core.sqleval import compile_expression
from rtml.datagen import generate
from rtml.definitions import Aggregation
from rtml.errors import BackendUnavailableError, InvalidInputError
from rtml.features import MISSING, NotFoundError, OnlineFeatures, get_online_features
from rtml.project import Project, init_project
from rtml.services.server.app import create_app
from rtml.testing.online import write_states
from rtml.testing.oracle import OracleEvent, view_values
from rtml.timeutil import from_millis, parse_timestamp, to_millis

REDIS_URL = os.environ.get("RTML_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
VIEWS = ("user_activity", "product_stats", "user_product")
MODEL = "purchase_1h"


def close(a: Any, b: Any) -> bool:
    """Integers (and None) equal exactly, floats within 1e-9 relative."""
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return bool(a == b)


@dataclass
class World:
    """The example project, a generated stream, its runtime and the oracle's events."""

    project: Project
    rows: list[dict[str, Any]]
    events: list[OracleEvent]
    runtime: Aggregator

    def oracle(self, row: dict[str, Any], t_ms: int) -> dict[str, Any]:
        """Every model feature (qualified) and on-demand feature, straight from the semantics."""
        defs = self.project.definitions
        out: dict[str, Any] = {}
        for name in VIEWS:
            view = defs.feature_views[name]
            key = {k: row[k] for k in view.join_keys}
            out.update({f"{name}__{f}": v for f, v in view_values(view, self.events, key, t_ms).items()})
        for feature in defs.models[MODEL].on_demand:
            out[feature.name] = compile_expression(feature.parsed)({**out, "price": row.get("price")})
        return out

    def times(self, rng: random.Random, n: int) -> list[int]:
        first, last = self.rows[0]["ts_ms"], self.rows[-1]["ts_ms"]
        picks = [rng.randrange(first, last + 3_600_000) for _ in range(n)]
        picks += [r["ts_ms"] for r in rng.sample(self.rows, 5)]  # exactly at an event
        picks += [(p // 3_600_000) * 3_600_000 for p in picks[:5]]  # on hour boundaries
        return picks


def project_at(root: Path, **env: str) -> Project:
    environ = {"RTML_EVENT_LOG__TYPE": "memory", **env}
    return Project.load(root, environ=environ)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = init_project(tmp_path_factory.mktemp("online") / "shop", force=True)
    project = project_at(root)
    rows = []
    for line in generate(3000, seed=3, dirty_rate=0).lines:
        event = json.loads(line)
        event["ts_ms"] = to_millis(parse_timestamp(event.pop("event_time")))
        rows.append(event)
    rows.sort(key=lambda r: r["ts_ms"])
    runtime = build([project.definitions.feature_views[v] for v in VIEWS], exact_for=timedelta(days=40))
    for i in range(0, len(rows), 500):
        runtime.apply(EventBatch.from_rows(rows[i : i + 500]))
    events = [OracleEvent(ts_ms=r["ts_ms"], event_id=r["event_id"], row=r) for r in rows]
    return World(project, rows, events, runtime)


def redis_store() -> OnlineStore:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis at {REDIS_URL} is not reachable ({exc}): start it with `make services` "
            "(bash scripts/services.sh start redis) or set RTML_TEST_REDIS_URL",
            pytrace=False,
        )
    prefix = f"rtml-test:{uuid.uuid4().hex[:10]}"
    store: OnlineStore = open_backend(
        "online_store", RedisOnlineStoreConfig(url=REDIS_URL, key_prefix=prefix)
    )
    return store


def drop_redis_keys(store: OnlineStore) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    prefix = store._prefix.decode()  # type: ignore[attr-defined]
    names = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if names:
        client.delete(*names)
    client.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def filled(request: pytest.FixtureRequest, world: World, tmp_path: Path) -> Iterator[OnlineStore]:
    """An online store of each backend holding every key's state of the world's runtime."""
    store: OnlineStore
    if request.param == "memory":
        store = open_backend("online_store", MemoryOnlineStoreConfig())
    elif request.param == "sqlite":
        store = open_backend("online_store", SqliteOnlineStoreConfig(path=tmp_path / "online.db"))
    else:
        store = redis_store()
    write_states(store, world.runtime)
    yield store
    if request.param == "redis":
        drop_redis_keys(store)
    store.close()


@pytest.fixture
def memory_store(world: World) -> Iterator[OnlineStore]:
    store: OnlineStore = open_backend("online_store", MemoryOnlineStoreConfig())
    write_states(store, world.runtime)
    yield store
    store.close()


def entity(row: dict[str, Any]) -> dict[str, Any]:
    return {"user_id": row["user_id"], "product_id": row["product_id"], "price": row["price"]}


# -- the Python API -----------------------------------------------------------------------


def test_model_reads_equal_the_oracle(world: World, filled: OnlineStore) -> None:
    rng = random.Random(7)
    with OnlineFeatures(world.project, filled) as reader:
        for t in world.times(rng, 25):
            picked = [entity(r) for r in rng.sample(world.rows, 4)]
            got = reader.get(MODEL, picked, at=from_millis(t))
            for row, values in zip(picked, got, strict=True):
                want = world.oracle(row, t)
                assert values.pop(MISSING) == []
                assert list(values) == list(want)
                bad = {k: (values[k], want[k]) for k in want if not close(values[k], want[k])}
                assert not bad, (t, row, bad)


def test_a_model_object_reads_as_its_name(world: World, memory_store: OnlineStore) -> None:
    model = world.project.definitions.models[MODEL]
    rows = [entity(r) for r in world.rows[-5:]]
    at = from_millis(world.rows[-1]["ts_ms"])
    with OnlineFeatures(world.project, memory_store) as reader:
        assert reader.get(model, rows, at) == reader.get(MODEL, rows, at) == reader.get(model, rows, at)


def test_view_reads_by_name_and_object_give_every_feature(world: World, memory_store: OnlineStore) -> None:
    view = world.project.definitions.feature_views["user_activity"]
    row = world.rows[-1]
    t = row["ts_ms"] + 1
    by_name = get_online_features(world.project, ["user_activity"], [{"user_id": row["user_id"]}],
                                  at=from_millis(t), store=memory_store)  # fmt: skip
    by_object = get_online_features(world.project, view, [{"user_id": str(row["user_id"])}],
                                    at=from_millis(t), store=memory_store)  # fmt: skip
    want = view_values(view, world.events, {"user_id": row["user_id"]}, t)
    assert by_name == by_object
    assert by_name[0] == {**{f"user_activity__{k}": v for k, v in want.items()}, MISSING: []}


def test_unknown_keys_read_as_defaults_and_say_so(world: World, memory_store: OnlineStore) -> None:
    known = world.rows[0]
    rows = [{"user_id": 10**12, "product_id": known["product_id"], "price": 5.0}]
    got = get_online_features(world.project, MODEL, rows, store=memory_store)[0]
    assert got[MISSING] == ["user_activity", "user_product"]
    assert got["user_activity__views_1h"] == 0 and got["user_activity__products_viewed_1h"] == 0
    assert got["user_activity__viewed_price_7d"] is None
    assert got["user_product__carts_1d"] == 0
    assert "product_stats" not in got[MISSING]


def test_many_rows_read_each_view_once(world: World, memory_store: OnlineStore) -> None:
    calls: list[tuple[str, int]] = []

    class Spy:
        def __getattr__(self, name: str) -> Any:
            return getattr(memory_store, name)

        def read(self, view: str, keys: Sequence[Key]) -> list[bytes | None]:
            calls.append((view, len(keys)))
            return memory_store.read(view, keys)

    rows = [entity(r) for r in world.rows[:200]]
    got = get_online_features(world.project, MODEL, rows, store=Spy())  # type: ignore[arg-type]
    assert len(got) == 200
    assert sorted(v for v, _ in calls) == sorted(VIEWS)
    assert dict(calls)["user_activity"] == len({r["user_id"] for r in rows})


def test_batched_reads_equal_single_reads_and_repeated_reads(world: World, memory_store: OnlineStore) -> None:
    """Keys repeated in a batch, unknown keys among known ones, and the same batch read again
    (its states then decoded from the reader's cache) give what one-row reads give."""
    rng = random.Random(3)
    rows = [entity(r) for r in rng.sample(world.rows, 60)]
    rows += rows[:10] + [{"user_id": 10**12, "product_id": rows[0]["product_id"], "price": None}]
    rng.shuffle(rows)
    with OnlineFeatures(world.project, memory_store) as reader:
        for t in world.times(rng, 3):
            at = from_millis(t)
            batched = reader.get(MODEL, rows, at)
            assert reader.get(MODEL, rows, at) == batched
            with OnlineFeatures(world.project, memory_store) as fresh:
                assert [fresh.get(MODEL, [row], at)[0] for row in rows] == batched
            assert sum(1 for values in batched if values[MISSING]) == 1


def test_a_stale_fingerprint_says_to_backfill(world: World, memory_store: OnlineStore) -> None:
    memory_store.set_fingerprint("product_stats", "0123456789abcdef")
    with pytest.raises(StaleStateError, match=r"product_stats.*rtml backfill"):
        get_online_features(world.project, MODEL, [entity(world.rows[0])], store=memory_store)


def test_state_of_another_definition_is_never_served(world: World, memory_store: OnlineStore) -> None:
    old = world.project.definitions.feature_views["user_activity"]
    changed = replace(old, aggregations=[*old.aggregations, Aggregation(function="count", windows=["2h"])])
    rt = build_view(changed, exact_for=timedelta(days=40))
    rt.apply(EventBatch.from_rows(world.rows))
    write_states(memory_store, rt)
    memory_store.set_fingerprint("user_activity", old.fingerprint())  # only the blobs tell
    with pytest.raises(StaleStateError, match="rtml backfill"):
        get_online_features(world.project, ["user_activity"], [{"user_id": world.rows[0]["user_id"]}],
                            store=memory_store)  # fmt: skip


def test_a_time_the_state_no_longer_covers_is_refused(world: World) -> None:
    view = world.project.definitions.feature_views["user_activity"]
    rt = build_view(view)  # exact for the last 10 minutes only
    rt.apply(EventBatch.from_rows(world.rows))
    store: OnlineStore = open_backend("online_store", MemoryOnlineStoreConfig())
    write_states(store, rt)
    user = {"user_id": world.rows[-1]["user_id"]}
    assert rt.covered_from is not None
    get_online_features(world.project, view, [user], at=from_millis(rt.covered_from), store=store)
    with pytest.raises(NotCoveredError, match="can be read exactly from"):
        get_online_features(world.project, view, [user], at=from_millis(rt.covered_from - 1), store=store)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"product_id": 1, "price": 1.0}], "join key 'user_id' is missing"),
        ([{"user_id": "abc", "product_id": 1, "price": 1.0}], "join key 'user_id' must be an integer"),
        ([{"user_id": 1.5, "product_id": 1, "price": 1.0}], "join key 'user_id' must be an integer"),
        ([{"user_id": 1, "product_id": None, "price": 1.0}], "join key 'product_id' is missing"),
        ([{"user_id": 1, "product_id": 1}], "request field 'price'"),
        ([{"user_id": 1, "product_id": 1, "price": "cheap"}], "request field 'price' must be a number"),
        (["user_id=1"], "entity row 0 must be an object"),
    ],
)
def test_bad_entity_rows_name_the_key(
    world: World, memory_store: OnlineStore, rows: Any, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        get_online_features(world.project, MODEL, rows, store=memory_store)


def test_unknown_names_and_bad_times(world: World, memory_store: OnlineStore) -> None:
    with pytest.raises(NotFoundError, match="no feature view or model named 'nope'"):
        get_online_features(world.project, "nope", [{}], store=memory_store)
    with pytest.raises(InvalidInputError, match="'at'"):
        get_online_features(world.project, MODEL, [], at="yesterday", store=memory_store)
    with pytest.raises(InvalidInputError, match="naive"):
        get_online_features(world.project, MODEL, [], at=datetime(2019, 10, 1), store=memory_store)  # noqa: DTZ001


def test_the_project_store_is_used_by_default(world: World, tmp_path: Path) -> None:
    root = init_project(tmp_path / "shop", force=True)
    project = project_at(root)
    store = open_online_store(project.config.online_store, project="ecommerce", data_dir=project.data_dir)
    write_states(store, world.runtime)
    store.close()
    assert (project.data_dir / "online.db").is_file()
    got = get_online_features(root, MODEL, [entity(world.rows[-1])])
    assert got[0][MISSING] == []


def test_a_store_that_is_down_fails_fast(world: World) -> None:
    project = project_at(
        world.project.root, RTML_ONLINE_STORE__TYPE="redis", RTML_ONLINE_STORE__URL="redis://127.0.0.1:1/0"
    )
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="online_store.url"):
        get_online_features(project, MODEL, [entity(world.rows[0])])
    assert time.monotonic() - started < 2.5


# -- HTTP -----------------------------------------------------------------------------------


@pytest.fixture
def client(world: World, tmp_path: Path) -> Iterator[tuple[TestClient, OnlineStore]]:
    name = f"http-{uuid.uuid4().hex[:8]}"
    root = init_project(tmp_path / "shop", force=True)
    project = project_at(root, RTML_ONLINE_STORE__TYPE="memory", RTML_ONLINE_STORE__NAME=name)
    store: OnlineStore = open_backend("online_store", MemoryOnlineStoreConfig(name=name))
    write_states(store, world.runtime)
    with TestClient(create_app(project)) as test_client:
        yield test_client, store


def test_http_get_one_entity(world: World, client: tuple[TestClient, OnlineStore]) -> None:
    http, _ = client
    row = world.rows[-1]
    at = from_millis(row["ts_ms"] + 1)
    reply = http.get("/features/user_activity", params={"user_id": row["user_id"], "at": at.isoformat()})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert parse_timestamp(body["at"]) == at
    view = world.project.definitions.feature_views["user_activity"]
    want = view_values(view, world.events, {"user_id": row["user_id"]}, row["ts_ms"] + 1)
    got = body["rows"][0]
    assert got.pop(MISSING) == []
    assert all(close(got[f"user_activity__{k}"], v) for k, v in want.items())


def test_http_post_model_and_views(world: World, client: tuple[TestClient, OnlineStore]) -> None:
    http, _ = client
    t = world.rows[-1]["ts_ms"] + 1
    rows = [entity(r) for r in world.rows[-3:]] + [{"user_id": 10**12, "product_id": 1, "price": None}]
    reply = http.post("/features", json={"model": MODEL, "entities": rows, "at": from_millis(t).isoformat()})
    assert reply.status_code == 200, reply.text
    got = reply.json()["rows"]
    for row, values in zip(rows[:3], got[:3], strict=True):
        want = world.oracle(row, t)
        assert all(close(values[k], v) for k, v in want.items())
    assert got[3][MISSING] == ["user_activity", "product_stats", "user_product"]
    assert got[3]["price_vs_product_mean"] is None
    views = http.post("/features", json={"views": ["product_stats"], "entities": [{"product_id": 1}]})
    assert views.status_code == 200 and "product_stats__views_1h" in views.json()["rows"][0]


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "message"),
    [
        ("GET", "/features/nope?user_id=1", None, 404, "no feature view or model named 'nope'"),
        ("GET", "/features/user_activity", None, 400, "join key 'user_id' is missing"),
        ("GET", "/features/user_activity?user_id=abc", None, 400, "join key 'user_id' must be an integer"),
        ("GET", "/features/user_activity?user_id=1&userid=2", None, 400, "unknown query parameter 'userid'"),
        ("GET", "/features/user_activity?user_id=1&at=soon", None, 400, "'at'"),
        ("POST", "/features", {"model": "nope", "entities": [{}]}, 404, "no model named 'nope'"),
        ("POST", "/features", {"views": ["nope"], "entities": [{}]}, 404, "'nope'"),
        ("POST", "/features", {"entities": [{"user_id": 1}]}, 400, "exactly one of"),
        ("POST", "/features", {"views": ["user_product"], "entities": [{"user_id": 1}]}, 400, "'product_id'"),
        ("POST", "/features", {"views": ["user_activity"], "entities": []}, 422, "entities"),
    ],
)
def test_http_errors(
    client: tuple[TestClient, OnlineStore], method: str, url: str, body: Any, status: int, message: str
) -> None:
    http, _ = client
    reply = http.request(method, url, json=body)
    assert reply.status_code == status, reply.text
    assert message in reply.json()["message"]


def test_http_stale_state_is_409(world: World, client: tuple[TestClient, OnlineStore]) -> None:
    http, store = client
    store.set_fingerprint("user_activity", "0123456789abcdef")
    reply = http.get(f"/features/user_activity?user_id={world.rows[0]['user_id']}")
    assert reply.status_code == 409 and "rtml backfill" in reply.json()["message"]


def test_http_store_down_is_503_with_retry_after(world: World, tmp_path: Path) -> None:
    root = init_project(tmp_path / "shop", force=True)
    project = project_at(
        root, RTML_ONLINE_STORE__TYPE="redis", RTML_ONLINE_STORE__URL="redis://127.0.0.1:1/0"
    )
    with TestClient(create_app(project)) as http:
        reply = http.get("/features/user_activity?user_id=1")
    assert reply.status_code == 503
    assert reply.headers["Retry-After"]
    assert "online_store.url" in reply.json()["message"]


def test_openapi_documents_the_feature_reads(client: tuple[TestClient, OnlineStore]) -> None:
    http, _ = client
    paths = http.get("/openapi.json").json()["paths"]
    assert "get" in paths["/features/{name}"] and "post" in paths["/features"]


# -- the command line -----------------------------------------------------------------------


def test_cli_features_get(world: World, tmp_path: Path) -> None:
    root = init_project(tmp_path / "shop", force=True)
    project = project_at(root)
    store = open_online_store(project.config.online_store, project="ecommerce", data_dir=project.data_dir)
    write_states(store, world.runtime)
    store.close()
    row = world.rows[-1]
    t = row["ts_ms"] + 1
    at = from_millis(t).isoformat().replace("+00:00", "Z")
    runner = CliRunner(env={"COLUMNS": "200", "RTML_EVENT_LOG__TYPE": "memory"})
    base = ["features", "get", "--project", str(root), "--at", at]
    result = runner.invoke(
        cli_app, [*base, "--view", "user_activity", "--key", f"user_id={row['user_id']}", "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    view = world.project.definitions.feature_views["user_activity"]
    want = view_values(view, world.events, {"user_id": row["user_id"]}, t)
    got = body["rows"][0]
    assert got.pop(MISSING) == [] and parse_timestamp(body["at"]) == from_millis(t)
    assert all(close(got[f"user_activity__{k}"], v) for k, v in want.items())

    table = runner.invoke(cli_app, [*base, "--model", MODEL, "-k", "user_id=1", "-k", "product_id=2",
                                    "-k", "price=3.5"])  # fmt: skip
    assert table.exit_code == 0, table.output
    assert "product_conversion_7d" in table.output and "holds no state" in table.output

    bad = runner.invoke(cli_app, [*base, "--view", "user_activity", "--key", "user_id"])
    assert isinstance(bad.exception, InvalidInputError) and "NAME=VALUE" in str(bad.exception)
    unknown = runner.invoke(cli_app, [*base, "--view", "nope", "--key", "user_id=1"])
    assert isinstance(unknown.exception, NotFoundError)
    both = runner.invoke(cli_app, [*base, "--key", "user_id=1"])
    assert isinstance(both.exception, InvalidInputError)


def test_utc_reply_time_is_now_by_default(world: World, client: tuple[TestClient, OnlineStore]) -> None:
    http, _ = client
    before = datetime.now(UTC)
    body = http.get(f"/features/user_activity?user_id={world.rows[0]['user_id']}").json()
    assert before - timedelta(seconds=1) <= parse_timestamp(body["at"]) <= datetime.now(UTC)
