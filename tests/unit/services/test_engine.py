"""The feature engine on the embedded backends (memory/local log, memory/SQLite online
store, DuckDB offline store): online reads equal the oracle, the offline store holds every
valid event once, late events are counted, restarts and crashes add nothing, stale state
is refused until a backfill, a lost online store is rebuilt by materialize."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rtml.backends.event_log.base import EventLog
from rtml.backends.offline_store import OfflineStore
from rtml.backends.online_store import OnlineStore
from rtml.backends.online_store.config import SqliteOnlineStoreConfig
from rtml.backends.online_store.memory import MemoryOnlineStore
from rtml.backends.online_store.sqlite import SqliteOnlineStore
from rtml.cli.main import app
from rtml.core.aggregation import StaleStateError, StateReader, decode_key, empty_values, plan_view
from rtml.datagen import generate, to_log_record
from rtml.errors import RtmlError
from rtml.features import at_iso, get_online_features
from rtml.offline import event_tables, offline_store
from rtml.project import RAW_EVENTS, Project
from rtml.services.engine import EngineService, backfill, materialize
from rtml.services.engine.checkpoint import checkpoint_name
from rtml.services.engine.stats import Watermark
from rtml.services.validator import ValidatorService
from rtml.testing import example_project, memory_event_log
from rtml.testing.engine import OracleReader, differences, valid_events
from rtml.testing.oracle import OracleEvent

CLOCK = "2019-10-20T00:00:00Z"  # after the generator's streams
SEED = 5
HOUR = 3_600_000
runner = CliRunner(env={"COLUMNS": "200"})


def quiet() -> logging.Logger:
    logger = logging.getLogger("test.rtml.engine.quiet")
    logger.propagate = False
    logger.handlers[:] = [logging.NullHandler()]
    return logger


def make_project(tmp_path: Path, event_log: str = "memory", **engine: str) -> Project:
    root = example_project(tmp_path / "shop", event_log=event_log).root
    environ = {"RTML_EVENT_LOG__TYPE": event_log, "RTML_VALIDATOR__CLOCK": CLOCK}
    settings = {"batch_size": "700", "poll_timeout": "20ms", "exact_for": "40d", "checkpoint_events": "2500"}
    settings.update(engine)
    environ.update({f"RTML_ENGINE__{k.upper()}": v for k, v in settings.items()})
    return Project.load(root, environ=environ)


class Pipeline:
    """A project with one log, online store and offline store shared by every run."""

    def __init__(self, project: Project, log: EventLog, online: OnlineStore) -> None:
        self.project, self.log, self.online = project, log, online
        self.offline: OfflineStore = offline_store(project)
        self.views = list(project.definitions.feature_views.values())
        self.table = event_tables(project)["events"]

    def produce(self, lines: list[bytes]) -> None:
        self.log.produce(self.project.topic(RAW_EVENTS), [to_log_record(x) for x in lines])
        self.log.flush()
        ValidatorService(self.project, log=self.log, logger=quiet()).run(until_idle=True)

    def engine(self, online: OnlineStore | None = None, **kwargs: Any) -> EngineService:
        return EngineService(
            self.project,
            log=self.log,
            online=online or self.online,
            offline=self.offline,
            logger=quiet(),
            **kwargs,
        )

    def events(self) -> list[OracleEvent]:
        return valid_events(self.project, self.log)

    def close(self) -> None:
        self.online.close()
        self.offline.close()
        self.log.close()


@pytest.fixture(params=["memory", "sqlite"])
def pipe(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pipeline]:
    project = make_project(tmp_path)
    online: OnlineStore = (
        MemoryOnlineStore()
        if request.param == "memory"
        else SqliteOnlineStore(SqliteOnlineStoreConfig(path=tmp_path / "online.db"))
    )
    p = Pipeline(project, memory_event_log(), online)
    yield p
    p.close()


def check_online(pipe: Pipeline, events: list[OracleEvent], samples: int = 250, seed: int = 1) -> int:
    """Sampled (view, key, t) reads of the online store at covered times equal the oracle;
    returns how many reads were compared."""
    oracle = OracleReader(pipe.views, events)
    rng = random.Random(seed)
    times = [e.ts_ms for e in events]
    end = max(times) + 1
    compared = 0
    for view in pipe.views:
        reader = StateReader(view)
        keys = oracle.keys(view.name)
        for _ in range(samples):
            key = rng.choice(keys)
            blob = pipe.online.read(view.name, [key])[0]
            if blob is None:  # every event of the key was too old for the online state
                want = oracle.read(view.name, key, end)
                assert not differences(empty_values(plan_view(view)), want), (view.name, key)
                continue
            covered = decode_key(blob).covered_from or 0
            t = max(covered, rng.choice(times) + rng.choice([0, 1, -1, HOUR, 24 * HOUR]))
            got, want = reader.read(blob, t), oracle.read(view.name, key, t)
            assert not differences(got, want), (view.name, key, t, differences(got, want))
            compared += 1
    return compared


def offline_ids(pipe: Pipeline) -> list[str]:
    ids: list[str] = pipe.offline.read(pipe.table).column("event_id").to_pylist()
    return ids


def test_online_equals_oracle_and_offline_holds_each_event_once(pipe: Pipeline) -> None:
    generation = generate(4000, seed=SEED)
    pipe.produce(generation.lines)
    stats = pipe.engine().run(until_idle=True)
    events = pipe.events()
    assert stats.events == len(events) == generation.summary.valid
    assert stats.stopped_by == "idle" and stats.checkpoints >= 2
    assert check_online(pipe, events) == 750  # every key had a blob (exact_for 40 days)
    ids = offline_ids(pipe)
    assert len(ids) == len(set(ids)) == len(events)
    assert set(ids) == {e.event_id for e in events}
    assert stats.offline_new == len(events)


def test_the_read_api_gives_the_oracle_values(pipe: Pipeline) -> None:
    pipe.produce(generate(1500, seed=SEED).lines)
    pipe.engine().run(until_idle=True)
    events = pipe.events()
    oracle = OracleReader(pipe.views, events)
    t = max(e.ts_ms for e in events) + 1
    rows = [{"user_id": key[0], "product_id": key[1]} for key in oracle.keys("user_product")[:40]]
    got = get_online_features(
        pipe.project, ["user_product", "user_activity"], rows, at=at_iso(t), store=pipe.online
    )
    for row, values in zip(rows, got, strict=True):
        for name in ("user_product", "user_activity"):
            view = oracle.views[name]
            want = oracle.read(name, tuple(row[k] for k in view.join_keys), t)
            mine = {f: values[f"{name}__{f}"] for f in want}
            assert not differences(mine, want)
        assert values["_missing"] == []


def expected_late(events: list[OracleEvent], lateness_ms: int) -> int:
    """Late events, counted one by one in log order (the test's own reading of the rule)."""
    late, top = 0, None
    for event in events:
        if top is not None and event.ts_ms < top - lateness_ms:
            late += 1
        top = event.ts_ms if top is None else max(top, event.ts_ms)
    return late


def test_late_events_are_counted_applied_and_stored(pipe: Pipeline) -> None:
    lines = generate(3000, seed=SEED, dirty_rate=0.2).lines  # out-of-order deliveries: 5 s - 10 min late
    pipe.produce(lines)
    stats = pipe.engine().run(until_idle=True)
    events = pipe.events()
    want = expected_late(events, 5 * 60_000)
    assert want > 0 and stats.late == want
    assert sum(stats.dropped.values()) == 0  # all within every view's retention: applied
    check_online(pipe, events, samples=100)
    assert len(offline_ids(pipe)) == len(events)


def test_watermark_counts_in_log_order_per_partition() -> None:
    import numpy as np

    mark = Watermark(allowed_lateness_ms=10)
    assert mark.observe(np.asarray([100, 95, 89, 120, 109, 110], dtype=np.int64)) == 2  # 89, 109
    assert mark.max_event_ms == 120 and mark.watermark_ms == 110
    assert mark.observe(np.asarray([109, 110], dtype=np.int64)) == 1
    # partition 1 is read behind partition 0: its events are judged against its own clock
    mark = Watermark(allowed_lateness_ms=10, max_by_partition={0: 500})
    ts = np.asarray([100, 505, 89, 95, 480], dtype=np.int64)
    assert mark.observe(ts, np.asarray([1, 0, 1, 1, 0], dtype=np.int64)) == 2  # 89 (p1), 480 (p0)
    assert mark.max_by_partition == {0: 505, 1: 100} and mark.watermark_ms == 90


def test_rerun_and_restart_add_nothing(pipe: Pipeline) -> None:
    lines = generate(4000, seed=SEED).lines
    pipe.produce(lines[:2000])
    first = pipe.engine().run(until_idle=True)
    again = pipe.engine().run(until_idle=True)
    assert first.events > 0 and again.events == 0 and again.restored
    pipe.produce(lines[2000:])
    third = pipe.engine().run(until_idle=True)
    events = pipe.events()
    assert first.events + third.events == len(events)
    check_online(pipe, events, samples=100)
    assert len(offline_ids(pipe)) == len(events)


class CrashingStore:
    """An online store that dies (raises) at its ``n``-th write (``write`` or ``write_many``:
    one atomic step each), once."""

    def __init__(self, inner: OnlineStore, n: int) -> None:
        self.inner, self.n, self.writes, self.checkpointed = inner, n, 0, False

    def write(self, view: str, states: Any, *, checkpoint: Any = None, ttl_ms: int | None = None) -> None:
        self._count()
        self.inner.write(view, states, checkpoint=checkpoint, ttl_ms=ttl_ms)
        self.checkpointed |= checkpoint is not None

    def write_many(self, writes: Any, *, checkpoint: Any = None) -> None:
        self._count()
        self.inner.write_many(writes, checkpoint=checkpoint)
        self.checkpointed |= checkpoint is not None

    def _count(self) -> None:
        self.writes += 1
        if self.writes == self.n:
            raise RuntimeError("crash")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize(
    ("crash_at", "state_interval"),
    # 4,000 events in batches of 500 make 9 online writes with state_interval 0 (each one
    # write_many of the three views), 4 with 1 s: crash at the first, the last and between.
    [(1, "0s"), (2, "0s"), (4, "0s"), (6, "0s"), (9, "0s"), (2, "1s"), (3, "1s"), (4, "1s")],
)
def test_a_crash_between_writes_loses_and_doubles_nothing(
    tmp_path: Path, crash_at: int, state_interval: str
) -> None:
    """The engine dies at its n-th online write (blobs or checkpoint) and is started again;
    with ``state_interval`` 0 every batch writes its keys, with 1 s full batches wait."""
    project = make_project(
        tmp_path, checkpoint_events="1200", batch_size="500", state_interval=state_interval
    )
    pipe = Pipeline(project, memory_event_log(), MemoryOnlineStore())
    try:
        pipe.produce(generate(4000, seed=SEED).lines)
        crashing = CrashingStore(pipe.online, crash_at)
        with pytest.raises(RuntimeError, match="crash"):
            pipe.engine(online=crashing).run(until_idle=True)  # type: ignore[arg-type]
        resumed = pipe.engine().run(until_idle=True)
        events = pipe.events()
        assert resumed.restored == crashing.checkpointed
        assert 0 < resumed.events < len(events) or not crashing.checkpointed
        check_online(pipe, events, samples=120, seed=crash_at)
        assert crashing.writes >= crash_at
        ids = offline_ids(pipe)
        assert len(ids) == len(set(ids)) == len(events)
    finally:
        pipe.close()


def edit_view_window(project: Project) -> Project:
    """The example with user_activity's 10-minute view count widened to 20 minutes."""
    path = project.root / "features.py"
    path.write_text(
        path.read_text().replace(
            'windows=["10m", "1h", "1d"], name="views"', 'windows=["20m", "1h", "1d"], name="views"'
        )
    )
    return Project.load(project.root, environ=project._environ)


def test_stale_state_is_refused_until_backfill(pipe: Pipeline) -> None:
    pipe.produce(generate(3000, seed=SEED).lines)
    pipe.engine().run(until_idle=True)
    pipe.project = edit_view_window(pipe.project)
    pipe.views = list(pipe.project.definitions.feature_views.values())
    with pytest.raises(StaleStateError, match="rtml backfill --view user_activity"):
        pipe.engine().run(until_idle=True)
    result = backfill(pipe.project, ["user_activity"], log=pipe.log, online=pipe.online, offline=pipe.offline)
    assert result.rebuilt == ["user_activity"] and result.kept == ["product_stats", "user_product"]
    more = generate(4000, seed=SEED).lines[3000:]
    pipe.produce(more)
    stats = pipe.engine().run(until_idle=True)
    assert stats.restored and stats.events > 0
    check_online(pipe, pipe.events(), samples=150)


def test_a_lost_online_store_is_refused_then_materialized(pipe: Pipeline) -> None:
    lines = generate(5000, seed=SEED).lines
    pipe.produce(lines[:3000])
    pipe.engine().run(until_idle=True)
    pipe.produce(lines[3000:4000])  # the engine is down, and its online store is lost
    empty = MemoryOnlineStore()
    with pytest.raises(RtmlError, match="rtml materialize"):
        pipe.engine(online=empty).run(until_idle=True)
    pipe.online = empty
    result = materialize(pipe.project, log=pipe.log, online=empty, offline=pipe.offline)
    assert sorted(result.rebuilt) == ["product_stats", "user_activity", "user_product"]
    # no checkpoint: the whole topic is caught up; new offline rows are the unseen records
    assert result.caught_up == result.events_read == len(pipe.events())
    assert 0 < result.appended < result.caught_up
    pipe.produce(lines[4000:])
    stats = pipe.engine().run(until_idle=True)
    assert stats.restored and stats.events > 0
    check_online(pipe, pipe.events(), samples=150)


def test_materialize_catches_up_events_the_engine_never_saw(pipe: Pipeline) -> None:
    pipe.produce(generate(3000, seed=SEED).lines)  # the engine never ran
    result = materialize(pipe.project, log=pipe.log, online=pipe.online, offline=pipe.offline)
    events = pipe.events()
    assert result.caught_up == result.appended == len(events)
    again = pipe.engine().run(until_idle=True)
    assert again.events == 0 and again.skipped == len(events)
    check_online(pipe, events, samples=100)


def test_reads_at_the_default_coverage(tmp_path: Path) -> None:
    pipe = Pipeline(make_project(tmp_path, exact_for="10m"), memory_event_log(), MemoryOnlineStore())
    try:
        pipe.produce(generate(3000, seed=SEED).lines)
        pipe.engine().run(until_idle=True)
        check_online(pipe, pipe.events(), samples=150)
    finally:
        pipe.close()


def test_cli_run_engine_backfill_materialize(tmp_path: Path) -> None:
    project = example_project(tmp_path / "shop", event_log="local")
    (project.root / "rtml.yaml").write_text(
        "project: shop\nevent_log: {type: local}\n"
        f"validator: {{clock: '{CLOCK}'}}\nengine: {{poll_timeout: 20ms, batch_size: 1000}}\n"
    )
    project = Project.load(project.root, environ={})
    log = project.event_log()
    log.produce(project.topic(RAW_EVENTS), [to_log_record(x) for x in generate(2000, seed=SEED).lines])
    log.close()
    ValidatorService(project, logger=quiet()).run(until_idle=True)
    root = str(project.root)
    result = runner.invoke(app, ["run", "engine", "--until-idle", "--project", root])
    assert result.exit_code == 0, result.output
    assert "events applied" in result.output and "started from empty state" in result.output
    result = runner.invoke(app, ["backfill", "--view", "user_product", "--project", root])
    assert result.exit_code == 0, result.output
    assert "rebuilt from the offline store" in result.output
    result = runner.invoke(app, ["materialize", "--project", root])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["run", "engine", "--until-idle", "--project", root])
    assert result.exit_code == 0 and "resumed from a checkpoint" in result.output
    result = runner.invoke(app, ["backfill", "--view", "nope", "--project", root])
    assert result.exit_code != 0


def test_checkpoint_name_is_per_group() -> None:
    assert checkpoint_name("rtml-engine") == "engine:rtml-engine"


def every_function_view() -> Any:
    """A view with every function, ``where`` filters, NULLs and two join keys."""
    from rtml.definitions import Aggregation, Entity, FeatureView, Source

    user, product = (
        Entity(name="user", join_keys=["user_id"]),
        Entity(name="product", join_keys=["product_id"]),
    )
    return FeatureView(
        name="every",
        entities=[user, product],
        source=Source(name="events", schema="e.json"),
        aggregations=[
            Aggregation(function="count", windows=["5m", "1d"], hop="1m", name="n"),
            Aggregation(function="sum", column="qty", windows=["1h"], hop="1m", where="kind = 'cart'"),
            Aggregation(function="mean", column="price", windows=["3d"], hop="1h"),
            Aggregation(function="min", column="price", windows=["30d"], hop="1h"),
            Aggregation(function="max", column="qty", windows=["25m"], hop="5m"),
            Aggregation(function="last", column="kind", windows=["1h", "7d"], hop="1m"),
            Aggregation(function="count_distinct", column="tag", windows=["2d"], hop="1h"),
        ],
    )


@pytest.mark.parametrize("exact_for", ["0s", "10m", "40d"])
def test_export_states_is_states_of_byte_for_byte(exact_for: str) -> None:
    from rtml.core.aggregation import EventBatch, build
    from rtml.services.engine.export import export_states
    from rtml.timeutil import parse_duration

    view = every_function_view()
    runtime = build([view], exact_for=parse_duration(exact_for))["every"]
    rng = random.Random(3)
    t0 = 1_569_888_000_000
    rows = []
    for i in range(6000):
        ts = t0 + rng.randrange(0, 3 * 24 * HOUR) if rng.random() < 0.8 else t0 + rng.randrange(0, 72) * HOUR
        rows.append({"ts_ms": ts, "event_id": f"e{rng.randrange(10**5):05d}-{i}", "user_id": rng.randrange(1, 30),
                     "product_id": rng.choice([1, 2, 3]), "kind": rng.choice(["view", "cart", None]),
                     "price": rng.choice([None, 1.5, 2, 10.25]), "qty": rng.choice([None, 1, 3]),
                     "tag": rng.choice([None, "a", "b"])})  # fmt: skip
    rows.sort(
        key=lambda r: r["ts_ms"] + (rng.randrange(0, 2 * HOUR) if rng.random() < 0.2 else 0)
    )  # late ones
    for i in range(0, len(rows), 400):
        applied = runtime.apply(EventBatch.from_rows(rows[i : i + 400]))
        keys = applied.keys + [(999, 9)]  # and a key the runtime never saw
        assert export_states(runtime, keys) == runtime.states_of(keys)
    every = runtime.keys()
    assert export_states(runtime, every) == runtime.states_of(every)
