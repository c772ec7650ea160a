"""Raw lines -> event log records, and a batching writer into a project's raw topic."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from rtml.backends.event_log.base import EventLog, LogRecord
from rtml.project import RAW_EVENTS, Project
from rtml.timeutil import parse_timestamp, to_millis

SOURCE_HEADER = ("source", b"ecommerce")


def _key(user_id: Any) -> bytes | None:
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        return str(user_id).encode()
    if isinstance(user_id, str) and user_id.isdigit():
        return user_id.encode()
    return None


def _timestamp_ms(event_time: Any) -> int | None:
    if not isinstance(event_time, str):
        return None
    try:
        return to_millis(parse_timestamp(event_time))
    except (ValueError, OverflowError, OSError):
        return None


def to_log_record(line: bytes) -> LogRecord:
    """The record for one raw line, kept byte for byte as the value.

    ``key`` is the ``user_id`` (so a user's events stay in one partition) and
    ``timestamp_ms`` the ``event_time`` when they parse; otherwise they are left unset
    and the validator downstream decides what the line is worth.
    """
    key = timestamp = None
    try:
        event = json.loads(line)
    except ValueError:
        event = None
    if isinstance(event, dict):
        key = _key(event.get("user_id"))
        timestamp = _timestamp_ms(event.get("event_time"))
    return LogRecord(value=line, key=key, headers=(SOURCE_HEADER,), timestamp_ms=timestamp)


class RawTopicWriter:
    """Sends raw lines to the raw topic of a project's event log, in batches.

    Use as a context manager: leaving it flushes and closes the log.
    """

    def __init__(
        self,
        log: EventLog,
        topic: str,
        batch_size: int = 2000,
        encode: Callable[[bytes], LogRecord] = to_log_record,
    ) -> None:
        self.log = log
        self.topic = topic
        self.batch_size = batch_size
        self._encode = encode
        self.sent = 0
        self._batch: list[LogRecord] = []

    @classmethod
    def for_project(cls, project_dir: str | Path) -> RawTopicWriter:
        """Open the event log of ``project_dir``'s ``rtml.yaml`` and create the raw topic.

        Records are built like every producer's (:func:`rtml.producer.raw_encoder`): keyed by
        the source's entity key, in the Confluent wire format where the project's settings
        say so (``producer.wire_format``)."""
        from rtml.producer import raw_encoder

        project = Project.load(project_dir)
        encoder = raw_encoder(project)
        log = project.event_log()
        topic = project.topic(RAW_EVENTS)
        try:
            log.create_topic(topic)
        except BaseException:
            log.close()
            raise
        return cls(log, topic, encode=encoder.record)

    def write(self, line: bytes) -> None:
        self._batch.append(self._encode(line))
        if len(self._batch) >= self.batch_size:
            self._send()

    def _send(self) -> None:
        if self._batch:
            self.log.produce(self.topic, self._batch)
            self.sent += len(self._batch)
            self._batch = []

    def flush(self) -> None:
        self._send()
        self.log.flush()

    def __enter__(self) -> RawTopicWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self.log.close()
