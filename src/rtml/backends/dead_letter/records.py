"""A dead letter as an event-log record and back: the value is the ORIGINAL raw bytes,
the key the source record's key, the timestamp the time received, and the reason
travels in headers (UTF-8 text):

=========================  ===============================================
``rtml.error.code``        stable error code, e.g. ``not_json``
``rtml.error.message``     what is wrong, e.g. ``$.price: expected number``
``rtml.error.field``       the field path (absent when no one field is at fault)
``rtml.source.topic``      where the raw event was read ...
``rtml.source.partition``  ... (decimal)
``rtml.source.offset``     ... (decimal)
``rtml.received_ms``       when the validator received it (ms since the epoch)
``rtml.event_id``          the event's id, when it could be read
=========================  ===============================================

Used by the Kafka dead-letter sink (writing and reading its topic) and by the
dead-letter indexer (topic -> search index). No Kafka import here.
"""

from __future__ import annotations

from rtml.backends.dead_letter.base import DeadLetter
from rtml.backends.event_log.base import LogRecord

CODE = "rtml.error.code"
MESSAGE = "rtml.error.message"
FIELD = "rtml.error.field"
SOURCE_TOPIC = "rtml.source.topic"
SOURCE_PARTITION = "rtml.source.partition"
SOURCE_OFFSET = "rtml.source.offset"
RECEIVED_MS = "rtml.received_ms"
EVENT_ID = "rtml.event_id"


def to_record(letter: DeadLetter, topic: str) -> LogRecord:
    headers = [
        (CODE, letter.code.encode()),
        (MESSAGE, letter.message.encode()),
        (SOURCE_TOPIC, letter.topic.encode()),
        (SOURCE_PARTITION, str(letter.partition).encode()),
        (SOURCE_OFFSET, str(letter.offset).encode()),
        (RECEIVED_MS, str(letter.received_ms).encode()),
    ]
    if letter.field_path is not None:
        headers.append((FIELD, letter.field_path.encode()))
    if letter.event_id is not None:
        headers.append((EVENT_ID, letter.event_id.encode()))
    return LogRecord(
        value=letter.raw, key=letter.key, headers=tuple(headers), timestamp_ms=letter.received_ms, topic=topic
    )


def from_record(record: LogRecord) -> DeadLetter:
    """A letter from a record of the dead-letter topic; a record without rtml's headers
    (written by something else) keeps its own position and gets the code ``unknown``."""
    headers: dict[str, str] = {}
    for name, raw in record.headers:
        headers.setdefault(name, raw.decode("utf-8", "replace"))
    return DeadLetter(
        raw=record.value,
        key=record.key,
        code=headers.get(CODE) or "unknown",
        message=headers.get(MESSAGE, ""),
        field_path=headers.get(FIELD),
        event_id=headers.get(EVENT_ID),
        topic=headers.get(SOURCE_TOPIC) or record.topic or "?",
        partition=_int(headers.get(SOURCE_PARTITION), max(record.partition, 0)),
        offset=_int(headers.get(SOURCE_OFFSET), max(record.offset, 0)),
        received_ms=_int(headers.get(RECEIVED_MS), max(record.timestamp_ms or 0, 0)),
    )


def _int(text: str | None, default: int) -> int:
    try:
        value = int(text) if text is not None else default
    except ValueError:
        return default
    return value if value >= 0 else default
