from __future__ import annotations

from pathlib import Path

from rtml.backends.event_log.base import LogRecord
from rtml.testing import example_project, memory_event_log


def test_example_project_uses_the_requested_log(tmp_path: Path) -> None:
    project = example_project(tmp_path / "p", event_log="memory")
    assert project.config.event_log.type == "memory"
    assert "purchase_1h" in project.definitions.models


def test_memory_event_log_round_trip() -> None:
    log = memory_event_log(partitions=2)
    log.produce("t", [LogRecord(value=b"a", key=b"k"), LogRecord(value=b"b", key=b"k")])
    consumer = log.consumer(["t"], "g")
    assert [r.value for r in consumer.poll(timeout=0.1)] == [b"a", b"b"]
