"""Routing one polled batch: each raw record to exactly one of valid, duplicate, dead letter.

Pure apart from the :class:`~rtml.core.validation.Deduper` it updates: no I/O. The
service hands the three lists over to the event log (and the dead-letter sink) in one
step; see ``docs/validator.md``.

=====================  ====================================================================
valid                  ``<project>.events.valid``: key = the raw key, value = the
                       normalized event, timestamp = the event time, headers =
                       ``rtml.event_id``, ``rtml.source.partition/offset``, then the
                       raw record's headers
duplicate              ``<project>.events.duplicates``: key = the raw key, value = the
                       event id, timestamp = the event time, headers = ``rtml.event_id``
                       and the raw position (``rtml.source.topic/partition/offset``)
invalid                a :class:`~rtml.backends.dead_letter.DeadLetter`: the original
                       bytes, the code, message and field, the raw position, the time
                       received, and the event id when it can be read at all
=====================  ====================================================================
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from rtml.backends.dead_letter import DeadLetter
from rtml.backends.event_log.base import LogRecord
from rtml.core.validation import Deduper, Invalid, Outcome, Valid

# Topic of the dropped duplicates, below the project's name (beside project.VALID_EVENTS).
DUPLICATE_EVENTS = "events.duplicates"

EVENT_ID_HEADER = "rtml.event_id"
SOURCE_TOPIC_HEADER = "rtml.source.topic"
SOURCE_PARTITION_HEADER = "rtml.source.partition"
SOURCE_OFFSET_HEADER = "rtml.source.offset"
_OURS = frozenset({EVENT_ID_HEADER, SOURCE_PARTITION_HEADER, SOURCE_OFFSET_HEADER})
# Invalid events larger than this are not searched for an id (it costs a JSON parse).
MAX_ID_SEARCH_BYTES = 64 * 1024


class PartitionDedupers:
    """One :class:`Deduper` per raw partition.

    A duplicate carries the same key as its original, so it lands in the same partition,
    where event times advance roughly in order. One deduper over all partitions would
    not do: partitions are read at different paces, and a partition days ahead in event
    time would push the others' events out of the horizon.
    """

    def __init__(self, factory: Callable[[], Deduper]) -> None:
        self._factory = factory
        self._dedupers: dict[int, Deduper] = {}

    def __len__(self) -> int:
        return sum(len(d) for d in self._dedupers.values())

    def of(self, partition: int) -> Deduper:
        deduper = self._dedupers.get(partition)
        if deduper is None:
            deduper = self._dedupers[partition] = self._factory()
        return deduper


@dataclass(slots=True)
class RoutedBatch:
    """The outputs of one batch, in the order of its records."""

    valid: list[LogRecord] = field(default_factory=list)
    duplicates: list[LogRecord] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    invalid_by_code: Counter[str] = field(default_factory=Counter)

    @property
    def events(self) -> int:
        return len(self.valid) + len(self.duplicates) + len(self.letters)


def route(
    records: Sequence[LogRecord],
    outcomes: Sequence[Outcome],
    dedupers: PartitionDedupers,
    *,
    received_ms: int,
    id_field: str,
) -> RoutedBatch:
    """Route ``records`` by their ``outcomes`` (same order); valid events whose id the
    deduper of their partition has seen within its horizon become duplicates."""
    batch = RoutedBatch()
    for record, outcome in zip(records, outcomes, strict=True):
        if isinstance(outcome, Valid):
            if dedupers.of(record.partition).is_duplicate(outcome.event_id, outcome.event_time_ms):
                batch.duplicates.append(duplicate_record(record, outcome))
            else:
                batch.valid.append(valid_record(record, outcome))
        else:
            batch.letters.append(dead_letter(record, outcome, received_ms=received_ms, id_field=id_field))
            batch.invalid_by_code[outcome.code] += 1
    return batch


def valid_record(record: LogRecord, outcome: Valid) -> LogRecord:
    headers = (
        (EVENT_ID_HEADER, outcome.event_id.encode()),
        (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
        (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
    ) + tuple(h for h in record.headers if h[0] not in _OURS)
    return LogRecord(
        value=outcome.payload, key=record.key, headers=headers, timestamp_ms=outcome.event_time_ms
    )


def duplicate_record(record: LogRecord, outcome: Valid) -> LogRecord:
    headers = (
        (EVENT_ID_HEADER, outcome.event_id.encode()),
        (SOURCE_TOPIC_HEADER, record.topic.encode()),
        (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
        (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
    )
    return LogRecord(
        value=outcome.event_id.encode(), key=record.key, headers=headers, timestamp_ms=outcome.event_time_ms
    )


def dead_letter(record: LogRecord, outcome: Invalid, *, received_ms: int, id_field: str) -> DeadLetter:
    return DeadLetter(
        raw=record.value if isinstance(record.value, bytes) else b"",
        key=record.key,
        code=outcome.code,
        message=outcome.message,
        field_path=outcome.field_path,
        topic=record.topic,
        partition=max(record.partition, 0),
        offset=max(record.offset, 0),
        received_ms=received_ms,
        event_id=lenient_event_id(record.value, id_field),
    )


def lenient_event_id(raw: bytes | None, id_field: str) -> str | None:
    """The id of an invalid event when its bytes are a JSON object with a string or
    integer id (skipping a Confluent wire-format header); ``None`` otherwise."""
    if not raw or len(raw) > MAX_ID_SEARCH_BYTES:
        return None
    body = memoryview(raw)[5:] if raw[0] == 0 else raw
    try:
        document: Any = msgspec.json.decode(body)
    except Exception:  # whatever the bytes are, they only lack a readable id
        return None
    if not isinstance(document, dict):
        return None
    value = document.get(id_field)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)


def header(record: LogRecord, name: str) -> bytes | None:
    """The first header ``name`` of ``record``."""
    for key, value in record.headers:
        if key == name:
            return value
    return None
