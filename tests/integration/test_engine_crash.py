"""THE engine's delivery guarantee: ``kill -9`` the engine mid-stream, again and again,
restart it, and at the end every valid event is in the online state once and in the
offline store once.

For each back-end set -- (a) the local log, the SQLite online store and DuckDB, (b) Kafka,
Redis and PostgreSQL -- generator events stream into the raw topic while a validator
thread of this process turns them into valid events, and ``rtml run engine --until-idle``
runs as a subprocess: killed with SIGKILL at a random moment (0.3-2 s) after its first
batch, restarted, four times; the last run starts once the stream has ended and runs to
idle. Then: every key's state read at the end, and sampled (key, t) reads at covered
times, equal the oracle over the valid topic (an event lost or counted twice changes a
count), and the offline store holds each valid event exactly once.

The servers come from ``scripts/services.sh``; one that is down FAILS the test.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rtml.core.aggregation import StateReader, decode_key
from rtml.datagen import generate, to_log_record
from rtml.offline import event_tables, offline_store
from rtml.project import RAW_EVENTS, Project
from rtml.services.engine.stores import open_online
from rtml.services.logging import service_logger
from rtml.services.validator import ValidatorService
from rtml.testing import example_project
from rtml.testing.engine import OracleReader, differences, valid_events

pytestmark = pytest.mark.integration

CLOCK = "2019-10-20T00:00:00Z"  # after the generated stream
SEED = 21
KILLS = 4
HOUR = 3_600_000
ENGINE = (
    "engine: {batch_size: 400, poll_timeout: 100ms, checkpoint_interval: 1s, checkpoint_events: 2000, "
    "offline_batch: 1500, exact_for: 40d}\n"
)


@dataclass
class Attempt:
    killed: bool
    seconds: float
    events: int  # events of the batches it logged
    checkpoints: int
    rc: int | None = None


@dataclass
class CrashRun:
    attempts: list[Attempt] = field(default_factory=list)


def make_project(tmp_path: Path, backends: str) -> Project:
    name = f"ecrash-{uuid.uuid4().hex[:10]}"
    root = example_project(tmp_path / "shop").root
    settings = (
        f"project: {name}\n{backends}"
        f"validator: {{clock: '{CLOCK}', batch_size: 500, poll_timeout: 100ms, transaction_timeout: 5s, "
        "session_timeout: 6s}\n" + ENGINE
    )
    (root / "rtml.yaml").write_text(settings)
    return Project.load(root, environ={})


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTML_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def logged(stderr: Path) -> tuple[int, int, bool]:
    """Events of the batches logged so far, checkpoints, and whether a batch was logged."""
    events = checkpoints = 0
    any_batch = False
    for line in stderr.read_text(errors="replace").splitlines():
        if '"event": "batch"' in line:
            any_batch = True
            events += json.loads(line)["events"]
        elif '"event": "checkpoint"' in line:
            checkpoints += 1
    return events, checkpoints, any_batch


def start_engine(root: Path, stderr: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "rtml.cli.main", "run", "engine", "--until-idle", "--project", str(root)]
    with stderr.open("wb") as err:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=child_env())


class Upstream(threading.Thread):
    """Produces raw lines at ``rate``/s and runs the validator over them, in this process."""

    CHUNK = 250

    def __init__(self, project: Project, lines: list[bytes], rate: float, log_path: Path) -> None:
        super().__init__(daemon=True)
        self.project, self.lines, self.rate = project, lines, rate
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._rush = False
        logger = service_logger(
            f"test.engine.crash.validator.{uuid.uuid4().hex[:6]}", stream=log_path.open("a")
        )
        self.validator = ValidatorService(project, logger=logger)
        self.validating = threading.Thread(target=self._validate, daemon=True)

    def _validate(self) -> None:
        try:
            self.validator.run(stop=self.stop)
        except BaseException as exc:
            self.error = exc

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def finish(self) -> None:
        """Send the rest at once, then stop the validator once it has handed everything over."""
        self._rush = True
        self._running.set()
        self.join(timeout=120)
        assert not self.is_alive() and self.error is None, f"producing failed: {self.error!r}"
        self.stop.set()
        self.validating.join(timeout=120)
        assert self.error is None, f"the validator failed: {self.error!r}"
        ValidatorService(self.project, logger=self.validator.logger).run(until_idle=True)

    def run(self) -> None:
        self.validating.start()
        log = self.project.event_log()
        try:
            for at in range(0, len(self.lines), self.CHUNK):
                self._running.wait()
                chunk = self.lines[at : at + self.CHUNK]
                log.produce(self.project.topic(RAW_EVENTS), [to_log_record(x) for x in chunk])
                log.flush()
                if not self._rush:
                    time.sleep(len(chunk) / self.rate)
        except BaseException as exc:
            self.error = exc
        finally:
            log.close()


def kill_and_restart(
    project: Project, n_events: int, rate: float, tmp_path: Path, rng: random.Random
) -> CrashRun:
    run = CrashRun()
    upstream = Upstream(project, generate(n_events, seed=SEED).lines, rate, tmp_path / "validator.log")
    upstream.start()
    for attempt in range(KILLS + 1):
        last = attempt == KILLS
        if last:
            upstream.finish()
        stderr = tmp_path / f"engine-{attempt}.err"
        started = time.monotonic()
        proc = start_engine(project.root, stderr)
        try:
            if not last:
                # wait for its first batch (start-up; on Kafka the group waits for the killed
                # copy's session to time out), keeping the stream for after it
                deadline = time.monotonic() + 90
                while proc.poll() is None and not logged(stderr)[2] and time.monotonic() < deadline:
                    if time.monotonic() - started > 2:
                        upstream.pause()
                    time.sleep(0.02)
                upstream.resume()
                if attempt == 0:
                    # the first copy is killed only after a checkpoint, so that at least one
                    # restart resumes from one (on a loaded machine a random kill may come first)
                    while proc.poll() is None and not logged(stderr)[1] and time.monotonic() < deadline:
                        time.sleep(0.02)
                time.sleep(rng.uniform(0.3, 2.0))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                rc = proc.wait(timeout=30)
            else:
                rc = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        events, checkpoints, _ = logged(stderr)
        seconds = round(time.monotonic() - started, 2)
        run.attempts.append(Attempt(rc == -signal.SIGKILL, seconds, events, checkpoints, rc))
        if last:
            assert rc == 0, f"the final run failed (rc {rc}):\n{stderr.read_text()[-3000:]}"
    print(f"\n{project.config.project}: {n_events} events; attempts: {run.attempts}")
    return run


def check_exactly_once(project: Project, run: CrashRun) -> None:
    events = valid_events(project)
    views = list(project.definitions.feature_views.values())
    oracle = OracleReader(views, events)
    end = max(e.ts_ms for e in events) + 1
    rng = random.Random(7)
    online = open_online(project)
    try:
        for view in views:
            reader = StateReader(view)
            keys = oracle.keys(view.name)
            blobs = online.read(view.name, keys)
            for key, blob in zip(keys, blobs, strict=True):  # every key, at the end
                assert blob is not None, (view.name, key)
                got, want = reader.read(blob, end), oracle.read(view.name, key, end)
                assert not differences(got, want), (view.name, key, differences(got, want))
            for _ in range(300):  # and at sampled covered times
                i = rng.randrange(len(keys))
                covered = decode_key(blobs[i]).covered_from or 0  # type: ignore[arg-type]
                t = max(covered, rng.choice(events).ts_ms + rng.choice([0, 1, -1, HOUR, 24 * HOUR]))
                got, want = reader.read(blobs[i], t), oracle.read(view.name, keys[i], t)  # type: ignore[arg-type]
                assert not differences(got, want), (view.name, keys[i], t, differences(got, want))
    finally:
        online.close()
    store = offline_store(project)
    try:
        ids = store.read(event_tables(project)["events"]).column("event_id").to_pylist()
    finally:
        store.close()
    assert len(ids) == len(set(ids)), "an event is twice in the offline store"
    assert set(ids) == {e.event_id for e in events}
    assert len(ids) == len(events) == len({e.event_id for e in events})
    mid_stream = [a for a in run.attempts[:-1] if a.killed and a.events > 0]
    assert len(mid_stream) >= KILLS // 2, f"too few kills landed mid-stream: {run.attempts}"
    assert any(a.checkpoints for a in run.attempts[:-1]), f"no run got to a checkpoint: {run.attempts}"


def test_kill_9_local_log_sqlite_duckdb(tmp_path: Path) -> None:
    project = make_project(tmp_path, "event_log: {type: local}\n")
    run = kill_and_restart(project, 30_000, 3000, tmp_path, random.Random(1))
    check_exactly_once(project, run)


@pytest.fixture
def scale_out(kafka_bootstrap: str, redis_url: str, pg_url: str, start_hint: str) -> Iterator[str]:
    """Kafka + Redis + PostgreSQL settings for one test; its topics, keys and schema go after."""
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
        f"event_log: {{type: kafka, bootstrap_servers: '{kafka_bootstrap}', partitions: 3, "
        "client: {session.timeout.ms: '6000', heartbeat.interval.ms: '1500'}}\n"
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
    ours = [t for t in admin.list_topics(timeout=10).topics if t.startswith("ecrash-")]
    if ours:
        for future in admin.delete_topics(ours, operation_timeout=10).values():
            future.result(timeout=30)


@pytest.mark.kafka
def test_kill_9_kafka_redis_postgres(tmp_path: Path, scale_out: str) -> None:
    project = make_project(tmp_path, scale_out)
    run = kill_and_restart(project, 15_000, 1000, tmp_path, random.Random(2))
    check_exactly_once(project, run)
