"""Fixtures of the event log contract suite: one fresh log per test and backend.

The Kafka backend runs against the broker of ``scripts/services.sh`` (or the one in
``RTML_TEST_KAFKA``). A broker that cannot be reached FAILS the Kafka tests (never
skips them), with a message saying how to start it.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rtml.backends.event_log.base import EventLog
from rtml.backends.event_log.config import (
    KafkaEventLogConfig,
    LocalEventLogConfig,
    MemoryEventLogConfig,
)
from rtml.backends.registry import open_backend
from rtml.errors import BackendUnavailableError

DEFAULT_KAFKA = "127.0.0.1:9092"
KAFKA = pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.integration])
ALL_BACKENDS = ["memory", "local", KAFKA]


class LogHarness:
    """A log under test, with unique topic/group names and a way to reopen it."""

    def __init__(self, backend: str, opener: Callable[[], EventLog]) -> None:
        self.backend = backend
        self._opener = opener
        self.log = opener()
        self.topics: list[str] = []
        self._suffix = uuid.uuid4().hex[:10]

    def topic(self, partitions: int = 1, name: str = "t") -> str:
        """A new topic with a name unique to this test."""
        full = f"rtml-test-{name}-{self._suffix}-{len(self.topics)}"
        self.log.create_topic(full, partitions)
        self.topics.append(full)
        return full

    def group(self, name: str = "g") -> str:
        return f"rtml-test-{name}-{self._suffix}"

    def reopen(self) -> EventLog:
        """Close the log and open it again (memory: the same object, it has no file)."""
        if self.backend != "memory":
            self.log.close()
            self.log = self._opener()
        return self.log

    def close(self) -> None:
        self.log.close()


@pytest.fixture(scope="session")
def kafka_servers() -> str:
    return os.environ.get("RTML_TEST_KAFKA", DEFAULT_KAFKA)


@pytest.fixture(scope="session")
def kafka_problem(kafka_servers: str) -> list[str]:
    """Filled, once per session, with why the broker cannot be used."""
    return []


@pytest.fixture(params=ALL_BACKENDS)
def harness(
    request: pytest.FixtureRequest, tmp_path: Path, kafka_servers: str, kafka_problem: list[str]
) -> Iterator[LogHarness]:
    backend: str = request.param
    opener: Callable[[], EventLog]
    if backend == "memory":
        log = open_backend("event_log", MemoryEventLogConfig(partitions=1))
        opener = lambda: log  # noqa: E731
    elif backend == "local":
        config = LocalEventLogConfig(path=tmp_path / "log" / "events.db", partitions=1)
        opener = lambda: open_backend("event_log", config)  # noqa: E731
    else:
        if kafka_problem:
            pytest.fail(kafka_problem[0], pytrace=False)
        kafka_config = KafkaEventLogConfig(bootstrap_servers=kafka_servers, partitions=1)
        opener = lambda: open_backend("event_log", kafka_config)  # noqa: E731
    try:
        harness = LogHarness(backend, opener)
    except BackendUnavailableError as exc:
        kafka_problem.append(f"{exc} (tests: or set RTML_TEST_KAFKA)")
        pytest.fail(kafka_problem[0], pytrace=False)
    yield harness
    harness.close()
    if backend == "kafka" and harness.topics:
        _delete_kafka_topics(kafka_servers, harness.topics)


def _delete_kafka_topics(servers: str, topics: list[str]) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": servers, "logger": logging.getLogger(__name__)})
    for future in admin.delete_topics(topics, request_timeout=10).values():
        try:
            future.result(timeout=15)
        except Exception:  # noqa: S110 - best-effort cleanup of test topics
            pass


DEFAULT_MLFLOW = "http://127.0.0.1:5000"


@pytest.fixture(scope="session")
def mlflow_url() -> str:
    """The MLflow tracking server (on PostgreSQL) of ``scripts/services.sh``, or the one in
    ``RTML_TEST_MLFLOW_URL``. A server that does not answer FAILS the test (never skips it)."""
    import httpx

    url = os.environ.get("RTML_TEST_MLFLOW_URL", DEFAULT_MLFLOW).rstrip("/")
    try:
        httpx.get(f"{url}/health", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.fail(
            f"MLflow tracking server at {url} is not reachable ({exc}): start it with "
            "`bash scripts/services.sh start mlflow` or set RTML_TEST_MLFLOW_URL",
            pytrace=False,
        )
    return url
