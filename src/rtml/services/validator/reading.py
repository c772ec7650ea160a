"""Reading a whole topic once: the dedupe rebuild at start-up and the counts.

Both read with a throw-away consumer group (a new name each time, nothing committed), so
they always start at the beginning and never disturb the validator's own group.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Collection, Iterator

from rtml.backends.event_log.base import EventLog, LogRecord
from rtml.services.validator.kafka_support import STALL_LIMIT_S, ConsumerProbe
from rtml.services.validator.routing import (
    EVENT_ID_HEADER,
    SOURCE_PARTITION_HEADER,
    PartitionDedupers,
    header,
)

READ_BATCH = 20_000
# Reading stops after this long with nothing to read even if Kafka still reports lag
# (e.g. the markers that close transactions, which hold an offset but no record).


def throwaway_group(purpose: str) -> str:
    return f"rtml-{purpose}-{uuid.uuid4().hex[:12]}"


def read_topic(
    log: EventLog,
    topic: str,
    *,
    purpose: str = "reader",
    poll_timeout: float = 0.5,
    idle_polls: int = 2,
    stop: threading.Event | None = None,
) -> Iterator[list[LogRecord]]:
    """The records of ``topic``, in batches, from its start until nothing is left.

    On Kafka this reads committed data only (``read_committed``), up to the end of the
    last finished transaction.
    """
    consumer = log.consumer([topic], throwaway_group(purpose))
    probe = ConsumerProbe(consumer)
    if not probe.is_kafka:  # on the embedded logs one empty poll is proof of the end
        poll_timeout, idle_polls = 0.0, 1
    try:
        empty = 0
        idle_since = time.monotonic()
        while stop is None or not stop.is_set():
            records = consumer.poll(READ_BATCH, poll_timeout)
            if records:
                empty = 0
                idle_since = time.monotonic()
                yield records
                continue
            empty += 1
            if empty >= idle_polls and (probe.caught_up() or time.monotonic() - idle_since > STALL_LIMIT_S):
                return
    finally:
        consumer.close()


def rebuild_dedupers(
    log: EventLog,
    valid_topic: str,
    dedupers: PartitionDedupers,
    *,
    partitions: Collection[int] | None = None,
    poll_timeout: float = 0.5,
    idle_polls: int = 2,
    stop: threading.Event | None = None,
) -> int:
    """Teach ``dedupers`` every event id of the valid topic, each to the deduper of the
    raw partition it came from (``rtml.source.partition``), with the event time in the
    record's timestamp; each deduper forgets those beyond its horizon. Only the raw
    ``partitions`` given are kept (``None``: all). Returns the number of records read."""
    read = 0
    batches = read_topic(
        log,
        valid_topic,
        purpose="dedupe-rebuild",
        poll_timeout=poll_timeout,
        idle_polls=idle_polls,
        stop=stop,
    )
    for records in batches:
        read += len(records)
        for record in records:
            event_id = header(record, EVENT_ID_HEADER)
            if event_id is None or record.timestamp_ms is None:
                continue
            source = header(record, SOURCE_PARTITION_HEADER)
            partition = int(source) if source is not None and source.isdigit() else record.partition
            if partitions is None or partition in partitions:
                dedupers.of(partition).is_duplicate(event_id.decode("utf-8", "replace"), record.timestamp_ms)
    return read


def count_records(log: EventLog, topic: str, *, poll_timeout: float = 0.5, idle_polls: int = 2) -> int:
    """How many records ``topic`` holds (committed ones, on Kafka)."""
    return sum(
        len(batch)
        for batch in read_topic(log, topic, purpose="count", poll_timeout=poll_timeout, idle_polls=idle_polls)
    )
