"""THE delivery guarantee: ``kill -9`` the validator mid-stream, again and again, restart
it, and every raw event still ends in exactly one place.

For each back end -- (a) the local log with the dead-letter table, (b) Kafka with the
Kafka dead-letter topic (letters in the validator's transaction), (c) Kafka with the
OpenSearch dead-letter index -- generator events stream into the raw topic (in order)
while the test starts ``rtml run validator --until-idle`` as a subprocess, kills it with
SIGKILL at a random moment (0.3-2 s) after it started handing batches over, restarts it,
four times, and finally lets it run to idle once the stream has ended. Then, exactly: valid + invalid + duplicates == produced, each equal
to the generator's count, no event id twice in the valid topic, none both valid and a
dead letter.

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

import httpx
import pytest

from rtml.backends.event_log.config import KafkaEventLogConfig
from rtml.backends.event_log.kafka import KafkaEventLog
from rtml.datagen import generate, to_log_record
from rtml.errors import BackendUnavailableError
from rtml.project import RAW_EVENTS, Project
from rtml.services.validator import audit
from rtml.testing import example_project

pytestmark = pytest.mark.integration

CLOCK = "2019-10-20T00:00:00Z"  # after the generated stream
SEED = 20
KILLS = 4
PROJECTS: list[str] = []  # made by this module; their Kafka topics are dropped at its end
SEARCH_URL = os.environ.get("RTML_TEST_SEARCH", "http://127.0.0.1:9200")


@dataclass
class Attempt:
    """One start of the validator: what it handed over before it died (or finished)."""

    killed: bool
    seconds: float
    events: int  # events of the batches it logged as handed over
    rc: int | None = None


@dataclass
class CrashRun:
    root: Path
    events: int
    attempts: list[Attempt] = field(default_factory=list)


def settings_yaml(project: str, event_log: str, dead_letter: str) -> str:
    return (
        f"project: {project}\n"
        f"event_log: {event_log}\n"
        f"dead_letter: {dead_letter}\n"
        f"validator: {{group: {project}-validator, clock: '{CLOCK}', batch_size: 1000, poll_timeout: 200ms, "
        f"transaction_timeout: 5s, session_timeout: 6s}}\n"
    )


def make_project(tmp_path: Path, event_log: str, dead_letter: str) -> Project:
    name = f"crash-{uuid.uuid4().hex[:10]}"
    PROJECTS.append(name)
    root = example_project(tmp_path / "shop").root
    (root / "rtml.yaml").write_text(settings_yaml(name, event_log, dead_letter))
    return Project.load(root, environ={})


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTML_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def handed_over(stderr: Path) -> tuple[int, bool]:
    """Events of the batches logged in ``stderr`` so far, and whether it logged one."""
    events, any_batch = 0, False
    for line in stderr.read_text(errors="replace").splitlines():
        if '"event": "batch"' in line:
            any_batch = True
            events += json.loads(line)["events"]
    return events, any_batch


def start(root: Path, stderr: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "rtml.cli.main",
        "run",
        "validator",
        "--until-idle",
        "--project",
        str(root),
        "--instance-id",
        "crash-test-0",
    ]
    with stderr.open("wb") as err:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=child_env())


class Stream(threading.Thread):
    """Produces ``lines`` into the raw topic, in order, ``rate`` events per second while
    running; :meth:`pause` and :meth:`resume` it, :meth:`finish` sends the rest at once."""

    CHUNK = 250

    def __init__(self, project: Project, lines: list[bytes], rate: float) -> None:
        super().__init__(daemon=True)
        self.project, self.lines, self.rate = project, lines, rate
        self.error: BaseException | None = None
        self._running = threading.Event()
        self._rush = False

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def finish(self) -> None:
        self._rush = True
        self._running.set()
        self.join(timeout=120)
        assert not self.is_alive() and self.error is None, f"producing failed: {self.error!r}"

    def run(self) -> None:
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
    """Events stream in (in the generator's order) while a validator runs: from start-up
    until it is killed 0.3-2 s after its first hand-over, so that events are still
    arriving when the kill comes, whatever the start-up took."""
    run = CrashRun(root=project.root, events=n_events)
    stream = Stream(project, generate(n_events, seed=SEED).lines, rate)
    stream.start()
    for attempt in range(KILLS + 1):
        last = attempt == KILLS
        if last:  # the final run starts once everything is in the raw topic
            stream.finish()
        stderr = tmp_path / f"validator-{attempt}.err"
        started = time.monotonic()
        proc = start(project.root, stderr)
        stream.resume()
        try:
            if not last:
                # wait for its first hand-over (start-up, dedupe rebuild, Kafka's wait for
                # the killed copy's transaction to be aborted), then kill at a random moment
                deadline = time.monotonic() + 60
                while proc.poll() is None and not handed_over(stderr)[1] and time.monotonic() < deadline:
                    if time.monotonic() - started > 3:
                        stream.pause()  # a long wait (Kafka): keep the stream for after it
                    time.sleep(0.02)
                stream.resume()
                time.sleep(rng.uniform(0.3, 2.0))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                rc = proc.wait(timeout=30)
                stream.pause()
            else:
                rc = proc.wait(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        events, _ = handed_over(stderr)
        seconds = round(time.monotonic() - started, 2)
        run.attempts.append(Attempt(killed=rc == -signal.SIGKILL, seconds=seconds, events=events, rc=rc))
        if last:
            assert rc == 0, f"the final run failed (rc {rc}):\n{stderr.read_text()[-3000:]}"
    print(f"\n{project.config.project}: {n_events} events; attempts: {run.attempts}")
    return run


def check_exactly_once(project: Project, n_events: int, run: CrashRun) -> None:
    summary = generate(n_events, seed=SEED).summary
    result = audit(project)
    assert result.repeated_valid_ids == [], "an event id is twice in the valid topic"
    assert result.valid_and_invalid_ids == [], "an event id is both valid and a dead letter"
    assert (result.valid, result.invalid, result.duplicates) == (
        summary.valid,
        summary.invalid,
        summary.duplicates,
    )
    assert result.total == summary.produced == n_events
    killed_mid_stream = [a for a in run.attempts if a.killed and 0 < a.events]
    assert len(killed_mid_stream) >= KILLS // 2, f"too few kills landed mid-stream: {run.attempts}"


def test_kill_9_local_log_and_dead_letter_table(tmp_path: Path) -> None:
    n_events = 40_000
    project = make_project(tmp_path, "{type: local, path: .rtml/log.db}", "{type: table}")
    run = kill_and_restart(project, n_events, 3500, tmp_path, random.Random(1))
    check_exactly_once(project, n_events, run)


@pytest.fixture(scope="module")
def kafka(kafka_bootstrap: str, start_hint: str) -> Iterator[str]:
    try:
        KafkaEventLog(KafkaEventLogConfig(bootstrap_servers=kafka_bootstrap)).close()
    except BackendUnavailableError as exc:
        pytest.fail(f"Kafka at {kafka_bootstrap} is needed: {exc}. Fix: {start_hint}")
    yield kafka_bootstrap
    # drop the topics of this module's projects
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    ours = [t for t in admin.list_topics(timeout=10).topics if t.split(".")[0] in PROJECTS]
    if ours:
        for future in admin.delete_topics(ours, operation_timeout=10).values():
            future.result(timeout=30)


@pytest.fixture(scope="module")
def search(start_hint: str) -> str:
    try:
        httpx.get(f"{SEARCH_URL}/_cluster/health", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.fail(f"the search server at {SEARCH_URL} is needed: {exc}. Fix: {start_hint}")
    return SEARCH_URL


@pytest.mark.kafka
def test_kill_9_kafka_and_kafka_dead_letter_topic(tmp_path: Path, kafka: str) -> None:
    n_events = 24_000
    project = make_project(
        tmp_path,
        f"{{type: kafka, bootstrap_servers: '{kafka}', partitions: 3}}",
        f"{{type: kafka, bootstrap_servers: '{kafka}'}}",
    )
    run = kill_and_restart(project, n_events, 1500, tmp_path, random.Random(2))
    check_exactly_once(project, n_events, run)


@pytest.mark.kafka
@pytest.mark.search
def test_kill_9_kafka_and_opensearch_dead_letters(tmp_path: Path, kafka: str, search: str) -> None:
    n_events = 24_000
    prefix = f"rtml-crash-{uuid.uuid4().hex[:10]}"
    project = make_project(
        tmp_path,
        f"{{type: kafka, bootstrap_servers: '{kafka}', partitions: 3}}",
        f"{{type: opensearch, url: '{search}', index_prefix: {prefix}}}",
    )
    run = kill_and_restart(project, n_events, 1500, tmp_path, random.Random(3))
    check_exactly_once(project, n_events, run)
