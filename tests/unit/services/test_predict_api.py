"""``POST /predict/{model}`` (and ``/batch``, ``/ready``) on the example project.

The online store is the in-memory one, filled from the aggregation runtime of a generated
stream as the engine fills it; the registry is :class:`rtml.testing.registry.MemoryModelRegistry`
holding real XGBoost models trained here on the example model's feature names. Scores are
held against XGBoost run directly on what :class:`rtml.features.OnlineFeatures` reads.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from fastapi.testclient import TestClient

from rtml.backends.online_store import Key, OnlineStore
from rtml.backends.online_store.config import MemoryOnlineStoreConfig
from rtml.backends.online_store.memory import MemoryOnlineStore
from rtml.backends.prediction_log.memory import MemoryPredictionLog
from rtml.core.aggregation import Aggregator, EventBatch, build
from rtml.datagen import generate
from rtml.errors import BackendUnavailableError
from rtml.features import OnlineFeatures, at_iso
from rtml.project import Project
from rtml.services.server.app import create_app
from rtml.services.server.settings import PredictSettings, ServerSettings
from rtml.testing import example_project
from rtml.testing.online import write_states
from rtml.testing.registry import MemoryModelRegistry, make_report
from rtml.timeutil import from_millis, parse_timestamp, to_millis

MODEL = "purchase_1h"
VIEWS = ("user_activity", "product_stats", "user_product")


@dataclass
class World:
    project: Project
    rows: list[dict[str, Any]]
    runtime: Aggregator
    at: str  # just after the last event: the features are as of then

    def entity(self, i: int) -> dict[str, Any]:
        row = self.rows[-1 - i]
        return {"user_id": row["user_id"], "product_id": row["product_id"], "price": row["price"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    project = example_project(tmp_path_factory.mktemp("predict") / "shop", event_log="memory")
    rows = []
    for line in generate(2000, seed=4, dirty_rate=0).lines:
        event = json.loads(line)
        event["ts_ms"] = to_millis(parse_timestamp(event.pop("event_time")))
        rows.append(event)
    rows.sort(key=lambda r: r["ts_ms"])
    runtime = build([project.definitions.feature_views[v] for v in VIEWS], exact_for=timedelta(days=40))
    runtime.apply(EventBatch.from_rows(rows))
    return World(project, rows, runtime, at_iso(rows[-1]["ts_ms"] + 1))


def train(names: Sequence[str], seed: int) -> bytes:
    """A real booster on ``names``; its label follows the first features, so scores vary."""
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.0, 2.0, size=(400, len(names))).astype(np.float32)
    y = (x[:, 0] + x[:, 2] - x[:, 5] + rng.normal(size=400) > 3).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": seed},
        xgb.DMatrix(x, label=y, feature_names=list(names)),
        num_boost_round=12,
    )
    return bytes(booster.save_raw("ubj"))


_REPORTS: dict[tuple[tuple[str, ...], int], Any] = {}


def register(registry: MemoryModelRegistry, names: Sequence[str], seed: int) -> str:
    """Log a version trained on ``names`` (reports are made once per module: they are slow)."""
    key = (tuple(names), seed)
    if key not in _REPORTS:
        _REPORTS[key] = replace(
            make_report(MODEL, features=3), feature_names=list(names), booster=train(names, seed)
        )
    return registry.log_run(_REPORTS[key]).version


@pytest.fixture
def store(world: World) -> Iterator[OnlineStore]:
    store = MemoryOnlineStore(MemoryOnlineStoreConfig())
    write_states(store, world.runtime)
    yield store
    store.close()


@pytest.fixture
def registry(world: World) -> MemoryModelRegistry:
    registry = MemoryModelRegistry()
    names = world.project.definitions.models[MODEL].feature_names
    register(registry, names, seed=1)
    register(registry, names, seed=2)
    registry.set_alias(MODEL, "champion", "1")
    return registry


def make_settings(**predict: Any) -> ServerSettings:
    base: dict[str, Any] = {"poll_interval_s": 0.05}
    return ServerSettings(predict=PredictSettings(**{**base, **predict}))


@dataclass
class Served:
    client: TestClient
    log: MemoryPredictionLog
    app: Any


@contextmanager
def serve(
    world: World, store: OnlineStore, registry: Any, *, wait: bool = True, **predict: Any
) -> Iterator[Served]:
    log = MemoryPredictionLog()
    app = create_app(
        world.project,
        settings=make_settings(**predict),
        online_store=store,
        registry=registry,
        prediction_log=log,
    )
    with TestClient(app) as client:
        if wait:
            assert app.state.scoring.holder.wait_loaded(10)
        yield Served(client, log, app)


@pytest.fixture
def served(world: World, store: OnlineStore, registry: MemoryModelRegistry) -> Iterator[Served]:
    with serve(world, store, registry) as served:
        yield served


def expected_scores(
    world: World, store: OnlineStore, registry: Any, version: str, rows: list[dict]
) -> list[float]:
    """XGBoost on what the online read gives, straight from the registry's bytes."""
    loaded = registry.load(MODEL, version)
    with OnlineFeatures(world.project, store) as reader:
        features = reader.get(MODEL, rows, at=world.at)
    names = list(loaded.feature_names)
    x = np.array([[np.nan if f[n] is None else f[n] for n in names] for f in features], dtype=np.float32)
    booster = xgb.Booster()
    booster.load_model(bytearray(loaded.booster))
    return [float(s) for s in booster.predict(xgb.DMatrix(x, feature_names=names))]


# -- scoring --------------------------------------------------------------------------------


def test_one_row_is_scored_from_the_online_features(
    world: World, store: OnlineStore, registry: MemoryModelRegistry, served: Served
) -> None:
    row = world.entity(0)
    reply = served.client.post(f"/predict/{MODEL}", params={"at": world.at, "features": "true"}, json=row)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == MODEL and body["version"] == "1"
    assert body["missing"] == [] and body["store_down"] is False
    with OnlineFeatures(world.project, store) as reader:
        want = reader.get(MODEL, [row], at=world.at)[0]
    names = world.project.definitions.models[MODEL].feature_names
    assert list(body["features"]) == names
    assert body["features"] == {n: want[n] for n in names}
    assert any(v not in (0, None) for v in body["features"].values())
    assert body["score"] == pytest.approx(expected_scores(world, store, registry, "1", [row])[0], rel=1e-6)


def test_features_are_left_out_unless_asked(world: World, served: Served) -> None:
    body = served.client.post(f"/predict/{MODEL}", params={"at": world.at}, json=world.entity(0)).json()
    assert "features" not in body
    assert set(body) == {"request_id", "model", "version", "score", "missing", "store_down"}


def test_a_batch_scores_each_row_like_a_single_call(
    world: World, store: OnlineStore, registry: MemoryModelRegistry, served: Served
) -> None:
    rows = [world.entity(i) for i in range(40)]
    reply = served.client.post(f"/predict/{MODEL}/batch", params={"at": world.at}, json={"rows": rows})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["version"] == "1" and len(body["predictions"]) == 40
    got = [p["score"] for p in body["predictions"]]
    want = expected_scores(world, store, registry, "1", rows)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert len(set(got)) > 3
    single = served.client.post(f"/predict/{MODEL}", params={"at": world.at}, json=rows[7]).json()
    assert single["score"] == pytest.approx(got[7], rel=1e-7)
    assert len({p["request_id"] for p in body["predictions"]}) == 40


def test_an_unknown_entity_gets_the_documented_defaults_and_a_flag(world: World, served: Served) -> None:
    row = {"user_id": 1, "product_id": 2, "price": 10.0}
    body = served.client.post(
        f"/predict/{MODEL}", params={"at": world.at, "features": "true"}, json=row
    ).json()
    assert sorted(body["missing"]) == sorted(VIEWS)
    features = body["features"]
    assert features["user_activity__views_1h"] == 0 and features["product_stats__carts_7d"] == 0
    assert features["user_activity__viewed_price_7d"] is None
    assert features["price_vs_product_mean"] is None  # price / NULLIF(null mean, 0)
    assert features["product_conversion_7d"] == 0.0
    assert 0.0 <= body["score"] <= 1.0
    known = served.client.post(f"/predict/{MODEL}", params={"at": world.at}, json=world.entity(0)).json()
    assert known["missing"] == []


def test_the_request_id_header_names_the_rows(world: World, served: Served) -> None:
    one = served.client.post(
        f"/predict/{MODEL}", params={"at": world.at}, json=world.entity(0), headers={"X-Request-ID": "abc"}
    )
    assert one.json()["request_id"] == "abc"
    many = served.client.post(
        f"/predict/{MODEL}/batch",
        params={"at": world.at},
        json={"rows": [world.entity(0), world.entity(1)]},
        headers={"X-Request-ID": "req"},
    )
    assert [p["request_id"] for p in many.json()["predictions"]] == ["req-0", "req-1"]


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        (f"/predict/{MODEL}", b"{not json", 400, "not valid JSON"),
        (f"/predict/{MODEL}", b"", 400, "empty"),
        (f"/predict/{MODEL}", b"[1, 2]", 400, "one JSON object"),
        (f"/predict/{MODEL}", b'{"product_id": 1, "price": 2.0}', 400, "body.user_id: join key is missing"),
        (
            f"/predict/{MODEL}",
            b'{"user_id": "x", "product_id": 1, "price": 2.0}',
            400,
            "body.user_id: must be",
        ),
        (
            f"/predict/{MODEL}",
            b'{"user_id": 1, "product_id": 1, "price": "2"}',
            400,
            "body.price: must be a number",
        ),
        (
            f"/predict/{MODEL}",
            b'{"user_id": 1, "product_id": 1}',
            400,
            "body.price: request field is missing",
        ),
        (
            f"/predict/{MODEL}",
            b'{"user_id": 1, "product_id": 1, "price": 1, "x": 1}',
            400,
            "body.x: unknown field",
        ),
        ("/predict/nope", b'{"user_id": 1, "product_id": 1, "price": 1}', 404, "no model named 'nope'"),
        (f"/predict/{MODEL}/batch", b'{"rows": []}', 400, "rows: is empty"),
        (f"/predict/{MODEL}/batch", b'{"rows": {}}', 400, "rows: must be a list"),
        (f"/predict/{MODEL}/batch", b"[]", 400, '{"rows": [...]}'),
        (f"/predict/{MODEL}/batch", b'{"rows": [{"user_id": 1}], "more": 1}', 400, "more: unknown field"),
        (f"/predict/{MODEL}/batch", b'{"rows": [{"user_id": 1, "price": 1}]}', 400, "rows[0].product_id"),
    ],
)
def test_bad_requests_are_4xx_naming_the_field(
    served: Served, path: str, body: bytes, status: int, words: str
) -> None:
    reply = served.client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == status, reply.text
    assert words in reply.json()["message"]
    assert reply.json()["error"] in {"invalid_input", "not_found"}


def test_a_bad_time_is_refused(world: World, served: Served) -> None:
    reply = served.client.post(f"/predict/{MODEL}", params={"at": "yesterday"}, json=world.entity(0))
    assert reply.status_code == 400 and "'at' must be an ISO-8601 time" in reply.json()["message"]


def test_limits_answer_413(world: World, store: OnlineStore, registry: MemoryModelRegistry) -> None:
    with serve(world, store, registry, max_batch_rows=3, max_body_bytes=2048) as served:
        rows = [world.entity(i) for i in range(4)]
        reply = served.client.post(f"/predict/{MODEL}/batch", params={"at": world.at}, json={"rows": rows})
        assert reply.status_code == 413 and "max_batch_rows" in reply.json()["message"]
        big = b'{"user_id": 1, "product_id": 1, "price": 1' + b" " * 3000 + b"}"
        reply = served.client.post(f"/predict/{MODEL}", content=big)
        assert reply.status_code == 413 and "max_body_bytes" in reply.json()["message"]
        ok = served.client.post(f"/predict/{MODEL}/batch", params={"at": world.at}, json={"rows": rows[:3]})
        assert ok.status_code == 200


# -- readiness, not loaded, store down, overload -------------------------------------------


def test_ready_when_the_store_answers_and_the_champion_is_loaded(served: Served) -> None:
    reply = served.client.get("/ready")
    assert reply.status_code == 200
    body = reply.json()
    assert body["ready"] is True and body["online_store"]["ok"] is True
    assert body["models"][MODEL]["version"] == "1" and body["models"][MODEL]["alias"] == "champion"


def test_no_champion_is_503_not_a_hang(world: World, store: OnlineStore) -> None:
    registry = MemoryModelRegistry()
    register(registry, world.project.definitions.models[MODEL].feature_names, seed=1)  # no alias
    with serve(world, store, registry, wait=False) as served:
        time.sleep(0.2)
        reply = served.client.post(f"/predict/{MODEL}", json=world.entity(0))
        assert reply.status_code == 503 and reply.headers["Retry-After"] == "1"
        assert reply.json()["error"] == "model_not_loaded"
        assert "no version has the alias 'champion'" in reply.json()["message"]
        ready = served.client.get("/ready")
        assert ready.status_code == 503 and ready.json()["models"][MODEL]["loaded"] is False
        registry.set_alias(MODEL, "champion", "1")  # promoted later: picked up by the poller
        assert served.app.state.scoring.holder.wait_loaded(10)
        assert served.client.get("/ready").status_code == 200


class BrokenStore:
    """An online store whose server is down: every call fails as the Redis backend does."""

    def read(self, view: str, keys: Sequence[Key]) -> list[bytes | None]:
        raise BackendUnavailableError("the Redis online store at 127.0.0.1:1/0 is unavailable (refused)")

    def fingerprint(self, view: str) -> str | None:
        return self.read(view, [])  # type: ignore[return-value]

    def close(self) -> None:
        pass


def test_store_down_is_a_clear_503(world: World, registry: MemoryModelRegistry) -> None:
    with serve(world, BrokenStore(), registry) as served:  # type: ignore[arg-type]
        reply = served.client.post(f"/predict/{MODEL}", json=world.entity(0))
        assert reply.status_code == 503 and reply.headers["Retry-After"] == "1"
        assert "online store" in reply.json()["message"] and reply.json()["error"] == "backend_unavailable"
        ready = served.client.get("/ready")
        assert ready.status_code == 503 and ready.json()["online_store"]["ok"] is False


def test_store_down_scores_with_defaults_when_configured(world: World, registry: MemoryModelRegistry) -> None:
    with serve(world, BrokenStore(), registry, features_default_on_store_down=True) as served:  # type: ignore[arg-type]
        reply = served.client.post(f"/predict/{MODEL}", params={"features": "true"}, json=world.entity(0))
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["store_down"] is True and sorted(body["missing"]) == sorted(VIEWS)
        assert body["features"]["user_activity__views_1h"] == 0
        unknown = served.client.post(
            f"/predict/{MODEL}", json={"user_id": 1, "product_id": 2, "price": world.entity(0)["price"]}
        ).json()
        assert unknown["score"] == body["score"]  # both scored on the defaults alone


class SlowStore:
    """Wraps a store; reads wait until ``release`` is set (to hold requests in flight)."""

    def __init__(self, inner: OnlineStore) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def read(self, view: str, keys: Sequence[Key]) -> list[bytes | None]:
        self.entered.set()
        self.release.wait(10)
        return self.inner.read(view, keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_overload_is_503_with_retry_after_not_a_queue(
    world: World, store: OnlineStore, registry: MemoryModelRegistry
) -> None:
    slow = SlowStore(store)
    # In the worker threads (single rows inline would hold the event loop: see the next test).
    with serve(world, slow, registry, max_in_flight=1, retry_after_s=2, inline_single_rows=False) as served:  # type: ignore[arg-type]
        results: list[int] = []
        first = threading.Thread(
            target=lambda: results.append(
                served.client.post(
                    f"/predict/{MODEL}", params={"at": world.at}, json=world.entity(0)
                ).status_code
            )
        )
        first.start()
        assert slow.entered.wait(10)
        reply = served.client.post(f"/predict/{MODEL}", params={"at": world.at}, json=world.entity(1))
        assert reply.status_code == 503 and reply.headers["Retry-After"] == "2"
        assert "max_in_flight" in reply.json()["message"]
        slow.release.set()
        first.join(10)
        assert results == [200]
        again = served.client.post(f"/predict/{MODEL}", params={"at": world.at}, json=world.entity(1))
        assert again.status_code == 200
        assert "rtml_predict_overloaded_total 1.0" in served.client.get("/metrics").text


# -- hot swap and the prediction log --------------------------------------------------------


def wait_version(client: TestClient, world: World, version: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            client.post(f"/predict/{MODEL}", params={"at": world.at}, json=world.entity(0)).json()["version"]
            == version
        ):
            return
        time.sleep(0.02)
    raise AssertionError(f"version {version} not served within {timeout}s")


class CountingRegistry:
    def __init__(self, inner: MemoryModelRegistry) -> None:
        self.inner = inner
        self.loads: list[str] = []

    def alias_version(self, model: str, alias: str) -> str | None:
        return self.inner.alias_version(model, alias)

    def load(self, model: str, version: str) -> Any:
        self.loads.append(version)
        return self.inner.load(model, version)

    def close(self) -> None:
        pass


def test_the_server_follows_the_alias_and_rolls_back_without_reloading(
    world: World, store: OnlineStore, registry: MemoryModelRegistry
) -> None:
    counting = CountingRegistry(registry)
    with serve(world, store, counting) as served:
        rows = [world.entity(i) for i in range(10)]
        v1 = served.client.post(
            f"/predict/{MODEL}/batch", params={"at": world.at}, json={"rows": rows}
        ).json()
        registry.set_alias(MODEL, "champion", "2")
        wait_version(served.client, world, "2")
        v2 = served.client.post(
            f"/predict/{MODEL}/batch", params={"at": world.at}, json={"rows": rows}
        ).json()
        assert [p["score"] for p in v2["predictions"]] == pytest.approx(
            expected_scores(world, store, registry, "2", rows), rel=1e-6
        )
        assert [p["score"] for p in v1["predictions"]] != [p["score"] for p in v2["predictions"]]
        registry.set_alias(MODEL, "champion", "1")  # rtml models rollback
        wait_version(served.client, world, "1")
        assert counting.loads == ["1", "2"]  # version 1 was kept loaded
        metrics = served.client.get("/metrics").text
        assert 'rtml_model_serving{model="purchase_1h",version="1"} 1.0' in metrics
        assert 'version="2"} 1.0' not in metrics.split("rtml_model_serving")[-1]


def test_a_version_that_fails_to_load_leaves_the_current_one_serving(
    world: World, store: OnlineStore, registry: MemoryModelRegistry
) -> None:
    bad = replace(make_report(MODEL, features=3), feature_names=["user_activity__nope"])
    registry.log_run(bad)  # version 3: trained on a feature the definitions do not have
    with serve(world, store, registry) as served:
        registry.set_alias(MODEL, "champion", "3")
        deadline = time.monotonic() + 10
        while served.client.get("/ready").json()["models"][MODEL]["error"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        status = served.client.get("/ready").json()["models"][MODEL]
        assert status["version"] == "1" and status["alias_version"] == "3"
        assert "user_activity__nope" in status["error"]
        reply = served.client.post(f"/predict/{MODEL}", params={"at": world.at}, json=world.entity(0))
        assert reply.status_code == 200 and reply.json()["version"] == "1"


def test_every_prediction_is_logged_with_what_was_served(world: World, served: Served) -> None:
    rows = [world.entity(i) for i in range(5)] + [{"user_id": 1, "product_id": 2, "price": None}]
    batch = served.client.post(
        f"/predict/{MODEL}/batch", params={"at": world.at, "features": "true"}, json={"rows": rows}
    ).json()
    assert served.app.state.scoring.log.flush(10)
    logged = served.log.read(MODEL).to_pylist()
    assert len(logged) == 6
    by_id = {r["request_id"]: r for r in logged}
    for row, prediction in zip(rows, batch["predictions"], strict=True):
        record = by_id[prediction["request_id"]]
        assert record["model"] == MODEL and record["version"] == "1"
        assert record["score"] == pytest.approx(prediction["score"], rel=1e-12)
        assert json.loads(record["features"]) == prediction["features"]
        assert json.loads(record["keys"]) == {"user_id": row["user_id"], "product_id": row["product_id"]}
        assert json.loads(record["request"]) == {"price": row["price"]}
        assert json.loads(record["missing"]) == prediction["missing"]
        assert record["ts"] == from_millis(to_millis(parse_timestamp(world.at)))
    metrics = served.client.get("/metrics").text
    assert "rtml_prediction_log_written_total 6.0" in metrics
    assert 'rtml_predictions_total{model="purchase_1h",version="1"} 6.0' in metrics


def test_the_openapi_document_describes_each_models_rows(served: Served) -> None:
    doc = served.client.get("/openapi.json").json()
    single = doc["paths"]["/predict/{model}"]["post"]
    schema = single["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["user_id", "product_id", "price"]
    assert schema["properties"]["product_id"]["type"] == "integer"
    model_param = next(p for p in single["parameters"] if p["name"] == "model")
    assert model_param["schema"]["enum"] == [MODEL]
    assert {"200", "400", "404", "413", "503"} <= set(single["responses"])
    batch = doc["paths"]["/predict/{model}/batch"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert batch["properties"]["rows"]["items"] == schema
    assert "/ready" in doc["paths"] and "/events" in doc["paths"] and "/features" in doc["paths"]


# -- the fast path and the routes -----------------------------------------------------------


def test_the_fast_path_answers_as_the_routes_do(world: World, served: Served) -> None:
    """``PredictFastPath`` answers the usual requests; one with a query parameter it does not
    know goes on to the FastAPI route (which ignores it). Both give the same answer, and both
    are logged and counted under the route's template."""
    rows = [world.entity(0), world.entity(1)]
    for path, body in ((f"/predict/{MODEL}", rows[0]), (f"/predict/{MODEL}/batch", {"rows": rows})):
        fast = served.client.post(path, params={"at": world.at, "features": "yes"}, json=body)
        routed = served.client.post(path, params={"at": world.at, "features": "yes", "x": "1"}, json=body)
        assert fast.status_code == routed.status_code == 200, (fast.text, routed.text)
        assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
        one, other = fast.json(), routed.json()
        if "predictions" in one:
            one, other = one["predictions"], other["predictions"]
        else:
            one, other = [one], [other]
        for a, b in zip(one, other, strict=True):
            assert a.pop("request_id") != b.pop("request_id")
            assert a == b and "features" in a
    # a flag the fast path cannot read: the route refuses it as FastAPI does
    bad = served.client.post(f"/predict/{MODEL}", params={"features": "maybe"}, json=rows[0])
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
    # a path that is no route is the routes' 404, not a model lookup
    assert served.client.post(f"/predict/{MODEL}/batch/x", json={}).status_code == 404
    metrics = served.client.get("/metrics").text
    assert 'rtml_http_requests_total{method="POST",route="/predict/{model}",status="200"} 2.0' in metrics
    assert 'route="/predict/{model}/batch",status="200"} 2.0' in metrics


def test_the_fast_path_reads_a_body_sent_in_pieces_and_checks_its_size(world: World, served: Served) -> None:
    row = json.dumps(world.entity(0)).encode()

    def pieces() -> Iterator[bytes]:
        yield row[:5]
        yield row[5:]

    reply = served.client.post(f"/predict/{MODEL}", params={"at": world.at}, content=pieces())
    assert reply.status_code == 200, reply.text
    limit = served.app.state.scoring.settings.max_body_bytes
    big = b'{"rows": [' + b" " * limit + b"]}"

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is checked while reading
        yield big[: limit // 2]
        yield big[limit // 2 :]

    too_big = served.client.post(f"/predict/{MODEL}/batch", content=chunked())
    assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large"


class ThreadRecordingStore:
    """Wraps a store; records the name of the thread of each read. ``trouble``: what the
    next read does first (``"slow"``: sleeps 0.2 s, ``"fail"``: raises as a store down)."""

    def __init__(self, inner: OnlineStore) -> None:
        self.inner = inner
        self.threads: list[str] = []
        self.trouble: str | None = None

    def read(self, view: str, keys: Sequence[Key]) -> list[bytes | None]:
        self.threads.append(threading.current_thread().name)
        trouble, self.trouble = self.trouble, None
        if trouble == "slow":
            time.sleep(0.2)
        elif trouble == "fail":
            raise BackendUnavailableError("the Redis online store at 127.0.0.1:1/0 is unavailable (timeout)")
        return self.inner.read(view, keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_single_rows_run_in_the_predictor_threads_or_inline(
    world: World, store: OnlineStore, registry: MemoryModelRegistry
) -> None:
    scores = {}
    for inline in (False, True):
        recording = ThreadRecordingStore(store)
        predict = PredictSettings(poll_interval_s=0.05, inline_single_rows=inline)
        app = create_app(
            world.project,
            settings=ServerSettings(predict=predict),
            online_store=recording,  # type: ignore[arg-type]
            registry=registry,
            prediction_log=MemoryPredictionLog(),
        )
        with TestClient(app) as client:
            assert app.state.scoring.holder.wait_loaded(10)
            reply = client.post(f"/predict/{MODEL}", params={"at": world.at}, json=world.entity(2))
            assert reply.status_code == 200, reply.text
            scores[inline] = reply.json()["score"]
            batch = client.post(
                f"/predict/{MODEL}/batch", params={"at": world.at}, json={"rows": [world.entity(2)]}
            )
            assert batch.json()["predictions"][0]["score"] == scores[inline]
        half = len(recording.threads) // 2  # one read per view, for the row then for the batch
        single, batched = recording.threads[:half], recording.threads[half:]
        assert half and all(name.startswith("rtml-predict") for name in batched)  # a batch: in the pool
        assert all(name.startswith("rtml-predict") is not inline for name in single)
    assert scores[False] == scores[True]


@pytest.mark.parametrize(("lines", "logged"), [("all", {200, 404}), ("errors", {404}), ("off", set())])
def test_access_log_lines_follow_the_setting_and_metrics_count_every_request(
    world: World, store: OnlineStore, registry: MemoryModelRegistry, lines: str, logged: set[int]
) -> None:
    import io
    import uuid

    from rtml.services.logging import service_logger

    stream = io.StringIO()
    logger = service_logger(f"test.access.{uuid.uuid4().hex[:8]}", stream=stream)
    settings = ServerSettings(access_log=lines, predict=PredictSettings(poll_interval_s=0.05))  # type: ignore[arg-type]
    app = create_app(
        world.project, settings=settings, online_store=store, registry=registry,
        prediction_log=MemoryPredictionLog(), logger=logger,
    )  # fmt: skip
    with TestClient(app) as client:
        assert app.state.scoring.holder.wait_loaded(10)
        assert (
            client.post(f"/predict/{MODEL}", params={"at": world.at}, json=world.entity(0)).status_code == 200
        )
        assert client.post("/predict/no_such_model", json=world.entity(0)).status_code == 404
        metrics = client.get("/metrics").text
    requests = [json.loads(x) for x in stream.getvalue().splitlines() if '"http_request"' in x]
    assert {r["status"] for r in requests if r["route"].startswith("/predict")} == logged
    assert 'route="/predict/{model}",status="200"} 1.0' in metrics
    assert 'route="/predict/{model}",status="404"} 1.0' in metrics


@pytest.mark.parametrize("trouble", ["slow", "fail"])
def test_a_slow_or_failing_inline_call_sends_single_rows_to_the_threads_for_a_pause(
    world: World, store: OnlineStore, registry: MemoryModelRegistry, trouble: str
) -> None:
    recording = ThreadRecordingStore(store)
    predict = PredictSettings(poll_interval_s=0.05, inline_slow_ms=100, inline_pause_s=1.0)
    app = create_app(
        world.project, settings=ServerSettings(predict=predict), online_store=recording,  # type: ignore[arg-type]
        registry=registry, prediction_log=MemoryPredictionLog(),
    )  # fmt: skip

    def one() -> tuple[int, str]:
        before = len(recording.threads)
        reply = client.post(f"/predict/{MODEL}", params={"at": world.at}, json=world.entity(3))
        return reply.status_code, recording.threads[before]

    with TestClient(app) as client:
        assert app.state.scoring.holder.wait_loaded(10)
        status, thread = one()
        assert status == 200 and not thread.startswith("rtml-predict")  # inline
        recording.trouble = trouble
        status, thread = one()
        assert status == (200 if trouble == "slow" else 503) and not thread.startswith("rtml-predict")
        assert "rtml_predict_inline_paused_total 1.0" in client.get("/metrics").text
        status, thread = one()
        assert status == 200 and thread.startswith("rtml-predict")  # paused: in the threads
        time.sleep(1.1)
        status, thread = one()
        assert status == 200 and not thread.startswith("rtml-predict")  # the pause is over
