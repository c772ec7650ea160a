"""In-process event log: thread-safe, not durable. Used by tests and ``rtml.testing``.

It follows the same contract as the durable backends (see ``base.py``): per-partition
offsets from 0 with no gaps, keyed records on ``partition_for(key)``, keyless ones
round-robin, and per-group committed offsets that outlive a consumer (but not the
log object). Like the local log, a group may have one open consumer per topic.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

from rtml.backends.event_log.base import LogConsumer, LogRecord, check_topic, partition_for
from rtml.backends.event_log.config import MemoryEventLogConfig
from rtml.errors import RtmlError


class MemoryEventLog:
    """Topics held in Python lists; every method may be called from any thread."""

    def __init__(self, config: MemoryEventLogConfig | None = None) -> None:
        self._config = config or MemoryEventLogConfig()
        self._cond = threading.Condition()
        self._topics: dict[str, list[list[LogRecord]]] = {}
        self._committed: dict[tuple[str, str, int], int] = {}  # (group, topic, part) -> next
        self._members: set[tuple[str, str]] = set()  # (group, topic) with an open consumer
        self._round_robin = 0
        self._closed = False

    # -- EventLog -------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        """Create ``name`` (default partition count from the config) if missing."""
        count = self._config.partitions if partitions is None else partitions
        check_topic(name, count)
        with self._cond:
            self._check_open()
            self._topics.setdefault(name, [[] for _ in range(count)])

    def produce(self, topic: str, records: Sequence[LogRecord]) -> None:
        """Append ``records``; a missing topic is created with the configured partitions."""
        if not records:
            return
        with self._cond:
            self._append(topic, records)

    def produce_and_commit(self, outputs: Mapping[str, Sequence[LogRecord]], consumer: LogConsumer) -> None:
        """Append ``outputs`` and commit ``consumer``'s positions under one lock."""
        if not isinstance(consumer, MemoryLogConsumer) or consumer._log is not self:
            raise RtmlError("produce_and_commit needs a consumer of this same memory log")
        with self._cond:
            for topic, records in outputs.items():
                self._append(topic, records)
            consumer.commit()

    def _append(self, topic: str, records: Sequence[LogRecord]) -> None:
        """Append under ``self._cond`` (held by the caller)."""
        if not records:
            return
        if topic not in self._topics:
            check_topic(topic)
            self._topics[topic] = [[] for _ in range(self._config.partitions)]
        now = int(time.time() * 1000)
        self._check_open()
        partitions = self._topics[topic]
        for record in records:
            if record.key is None:
                part = self._round_robin % len(partitions)
                self._round_robin += 1
            else:
                part = partition_for(record.key, len(partitions))
            log = partitions[part]
            stamp = now if record.timestamp_ms is None else record.timestamp_ms
            log.append(
                replace(
                    record,
                    value=bytes(record.value),
                    headers=tuple(record.headers),
                    timestamp_ms=stamp,
                    topic=topic,
                    partition=part,
                    offset=len(log),
                )
            )
        self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> None:
        """Nothing to do: ``produce`` appends synchronously (and nothing is durable)."""

    def consumer(self, topics: Sequence[str], group: str) -> MemoryLogConsumer:
        """A consumer of ``topics`` (created if missing) in ``group``."""
        names = list(dict.fromkeys(topics))
        if not names:
            raise RtmlError("a consumer needs at least one topic")
        for name in names:
            if name not in self._topics:
                self.create_topic(name)
        with self._cond:
            self._check_open()
            taken = [t for t in names if (group, t) in self._members]
            if taken:
                raise RtmlError(
                    f"consumer group {group!r} already has an open consumer of "
                    f"{', '.join(taken)} on this log. The embedded logs allow one consumer "
                    "per group and topic: close the other one, or use another group"
                )
            self._members.update((group, t) for t in names)
        return MemoryLogConsumer(self, names, group)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __enter__(self) -> MemoryEventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- used by MemoryLogConsumer ----------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RtmlError("this memory event log is closed")

    def _partitions(self, topics: Sequence[str]) -> list[tuple[str, int]]:
        with self._cond:
            return [(t, p) for t in topics for p in range(len(self._topics[t]))]

    def _fetch(
        self, positions: dict[tuple[str, int], int], max_records: int, start: int, timeout: float
    ) -> list[LogRecord]:
        """Records after ``positions``, fairly across partitions, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        keys = list(positions)
        keys = keys[start % len(keys) :] + keys[: start % len(keys)]
        share = max(1, -(-max_records // len(keys)))  # ceil
        with self._cond:
            while True:
                self._check_open()
                batches = []
                left = max_records
                for topic, part in keys:
                    if left <= 0:
                        break
                    log = self._topics[topic][part]
                    pos = positions[(topic, part)]
                    batch = log[pos : pos + min(share, left)]
                    left -= len(batch)
                    batches.append(batch)
                if left < max_records:
                    return _interleave(batches)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)

    def _commit(self, group: str, positions: dict[tuple[str, int], int]) -> None:
        with self._cond:
            for (topic, part), pos in positions.items():
                self._committed[(group, topic, part)] = pos

    def _committed_position(self, group: str, topic: str, part: int) -> int:
        with self._cond:
            return self._committed.get((group, topic, part), 0)

    def _leave(self, group: str, topics: Sequence[str]) -> None:
        with self._cond:
            self._members.difference_update((group, t) for t in topics)


class MemoryLogConsumer:
    """A consumer of a :class:`MemoryEventLog`, owning every partition of its topics."""

    def __init__(self, log: MemoryEventLog, topics: Sequence[str], group: str) -> None:
        self._log = log
        self._topics = list(topics)
        self._group = group
        self._positions = {(t, p): log._committed_position(group, t, p) for t, p in log._partitions(topics)}
        self._polls = 0
        self._closed = False

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[LogRecord]:
        if self._closed:
            raise RtmlError(f"this consumer of group {self._group!r} is closed")
        if max_records < 1:
            return []
        self._polls += 1
        records = self._log._fetch(self._positions, max_records, self._polls, timeout)
        for record in records:
            self._positions[(record.topic, record.partition)] = record.offset + 1
        return records

    def commit(self) -> None:
        if self._closed:
            raise RtmlError(f"this consumer of group {self._group!r} is closed")
        self._log._commit(self._group, self._positions)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._log._leave(self._group, self._topics)

    def __enter__(self) -> MemoryLogConsumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _interleave(batches: Sequence[Sequence[LogRecord]]) -> list[LogRecord]:
    """Round-robin merge of per-partition batches: each keeps its order."""
    merged = itertools.zip_longest(*batches)
    return [record for row in merged for record in row if record is not None]
