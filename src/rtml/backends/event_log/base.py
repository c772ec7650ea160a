"""The event log port.

An event log holds named topics, each split into partitions; a record's partition is
chosen from its key (the same key always goes to the same partition), and records of
one partition keep their order and get increasing offsets. Consumers belong to a
group; a group's committed offsets survive restarts, so a consumer that commits only
after its outputs are flushed sees every record at least once, and (with a dedupe on
``event_id`` downstream) its outputs exactly once.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from rtml.errors import InvalidInputError

# Kafka's rule for topic names, applied by every backend so a name that works
# embedded also works on Kafka.
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class LogRecord:
    """One record of a topic. ``timestamp_ms`` is the producer's time (ms since epoch)."""

    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None
    topic: str = ""
    partition: int = -1
    offset: int = -1


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int = 1
    config: dict[str, str] = field(default_factory=dict)


def partition_for(key: bytes | None, partitions: int, fallback: int = 0) -> int:
    """Stable partition of ``key``: CRC32 modulo the partition count.

    Keyless records go to ``fallback`` (callers spread them round-robin).
    """
    if key is None:
        return fallback % partitions
    return zlib.crc32(key) % partitions


def check_topic(name: str, partitions: int = 1) -> None:
    """Raise :class:`~rtml.errors.InvalidInputError` for a name Kafka would refuse
    or a partition count below 1."""
    if not isinstance(name, str) or not _TOPIC_NAME.match(name) or name in {".", ".."}:
        raise InvalidInputError(
            f"invalid topic name {name!r}. Fix: use 1-249 characters among letters, digits, '.', '_' and '-'"
        )
    if partitions < 1:
        raise InvalidInputError(f"topic {name!r}: partitions must be at least 1, got {partitions}")


@runtime_checkable
class LogConsumer(Protocol):
    """A member of a consumer group reading one or more topics."""

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[LogRecord]:
        """Return up to ``max_records`` records after the group's position; [] when idle."""
        ...

    def commit(self) -> None:
        """Commit, durably, the position after every record returned by ``poll`` so far."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class EventLog(Protocol):
    """Append-only topics with per-group committed offsets."""

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        """Create ``name`` if missing (idempotent; an existing topic keeps its partition
        count). ``None`` means the backend's configured ``partitions``."""
        ...

    def produce(self, topic: str, records: Sequence[LogRecord]) -> None:
        """Append records; ``key``, ``headers`` and ``timestamp_ms`` are kept (a missing
        timestamp becomes the produce time). A missing topic is created."""
        ...

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every produced record is durable."""
        ...

    def produce_and_commit(self, outputs: Mapping[str, Sequence[LogRecord]], consumer: LogConsumer) -> None:
        """Append ``outputs`` (topic -> records) and commit ``consumer``'s polled positions
        as ONE atomic step: after a crash either both happened or neither did. This is how
        a consume-transform-produce service gives each input exactly one outcome.
        ``consumer`` must come from this log."""
        ...

    def consumer(self, topics: Sequence[str], group: str) -> LogConsumer:
        """A consumer of ``topics`` (created if missing) in ``group``, starting at the
        group's committed offsets (or at the beginning for a new group)."""
        ...

    def close(self) -> None: ...
