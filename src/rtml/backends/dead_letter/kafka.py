"""Dead letters on the Kafka topic ``<project>.events.invalid``.

A letter is one record (layout: :mod:`rtml.backends.dead_letter.records`): the value is
the ORIGINAL raw bytes, the key the source record's key, the timestamp the time received,
and the reason travels in ``rtml.*`` headers.

Idempotence, the Kafka way: a validator on Kafka sends :meth:`to_records` to
:attr:`topic` in the same transaction as its valid outputs and its input offsets, so a
crash aborts all three together (``transactional = True``). The plain :meth:`write`
uses an idempotent producer: it never duplicates a record on its own retries, but a
validator that re-processes after a crash writes the letter again. The readers below
(``count``, ``counts_by_code``, ``recent``) therefore keep one record per source
position -- the one received first -- so the port still sees one copy.

The readers do not keep counters (they would be wrong across processes and restarts):
each call reads the topic from its start up to its end with a throw-away consumer
(``assign``, no group join, nothing committed, ``read_committed``), bounded by
``read_timeout_s``. That is exact but linear in the topic's size; query a search index
for big volumes. Letters of a transaction still open are not counted (the read waits
``SETTLE_S`` for it).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from rtml.backends.dead_letter.base import DeadLetter, by_recency, first_per_position, ranked
from rtml.backends.dead_letter.config import DEFAULT_PROJECT, KafkaDeadLetterConfig, invalid_topic
from rtml.backends.dead_letter.records import from_record, to_record
from rtml.backends.event_log.base import LogRecord, check_topic
from rtml.backends.event_log.config import KafkaEventLogConfig
from rtml.backends.event_log.kafka import CONNECT_TIMEOUT_S, KafkaEventLog, translate
from rtml.errors import BackendUnavailableError, RtmlError

logger = logging.getLogger(__name__)

SETTLE_S = 2.0  # how long a read waits at an open (or just committed) transaction
_SKIP = {KafkaError._TRANSPORT, KafkaError.UNKNOWN_TOPIC_OR_PART}  # librdkafka retries these


class KafkaDeadLetterSink:
    """The dead-letter topic; created (if missing) when the sink is opened."""

    transactional: ClassVar[bool] = True

    def __init__(self, config: KafkaDeadLetterConfig | None = None) -> None:
        self._config = config or KafkaDeadLetterConfig()
        self._topic = self._config.topic or invalid_topic(DEFAULT_PROJECT)
        check_topic(self._topic, self._config.partitions)
        self._client: dict[str, Any] = {
            "bootstrap.servers": self._config.bootstrap_servers,
            "logger": logger,
            **self._config.client,
        }
        log_config = KafkaEventLogConfig(
            bootstrap_servers=self._config.bootstrap_servers,
            client=dict(self._config.client),
            partitions=self._config.partitions,
            replication_factor=self._config.replication_factor,
            topic_config=dict(self._config.topic_config),
        )
        with _ours():
            self._log = KafkaEventLog(log_config)
            self._log.create_topic(self._topic)

    @property
    def topic(self) -> str:
        return self._topic

    def to_records(self, letters: Sequence[DeadLetter]) -> list[LogRecord]:
        """One record per letter (first per position), for a transactional producer."""
        return [to_record(letter, self._topic) for letter in first_per_position(letters)]

    def write(self, letters: Sequence[DeadLetter]) -> None:
        """Queue the letters on the idempotent producer; ``flush`` waits for them."""
        if letters:
            with _ours():
                self._log.produce(self._topic, self.to_records(letters))

    def flush(self) -> None:
        """Wait until every written letter is on the brokers (``acks=all``)."""
        with _ours():
            self._log.flush()

    def count(self) -> int:
        return len(self._read())

    def counts_by_code(self) -> dict[str, int]:
        return ranked(Counter(letter.code for letter in self._read()))

    def recent(self, limit: int = 20) -> list[DeadLetter]:
        """The ``limit`` letters received last. Reads the whole topic: records are in
        write order, and a re-processed batch is written after newer letters."""
        if limit <= 0:
            return []
        return sorted(self._read(), key=by_recency)[-limit:]

    def close(self) -> None:
        with _ours():
            self._log.close()

    def __enter__(self) -> KafkaDeadLetterSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------

    def _read(self) -> list[DeadLetter]:
        """The letters of the topic, one per source position, read with a fresh consumer
        from the start of each partition up to its current end."""
        settings = {
            **self._client,
            "group.id": f"rtml-dead-letter-reader-{uuid.uuid4().hex}",  # never joined
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",  # skip aborted transactions
            "fetch.wait.max.ms": 50,  # at the end, do not wait long for more
        }
        servers = self._config.bootstrap_servers
        try:
            consumer = Consumer(settings)
        except (KafkaException, ValueError, TypeError) as exc:
            raise RtmlError(
                f"invalid Kafka client settings ({exc}). Fix: check dead_letter.client in rtml.yaml"
            ) from exc
        try:
            starts = self._starts(consumer)
            if not starts:
                return []
            consumer.assign([TopicPartition(self._topic, p, offset) for p, (offset, _) in starts.items()])
            letters: dict[tuple[str, int, int], DeadLetter] = {}
            for message in self._messages(consumer, {p: end for p, (_, end) in starts.items()}):
                letter = _from_message(message)
                kept = letters.get(letter.position)
                # A re-write of a keyless letter may sit in another partition: the first
                # copy is the one received first (then the one read first).
                if kept is None or letter.received_ms < kept.received_ms:
                    letters[letter.position] = letter
            return list(letters.values())
        except KafkaException as exc:
            raise _retarget(translate(exc.args[0], servers, f"reading {self._topic!r}")) from exc
        finally:
            consumer.close()

    def _starts(self, consumer: Consumer) -> dict[int, tuple[int, int]]:
        """partition -> (first offset to read, end offset) of the non-empty partitions."""
        meta = consumer.list_topics(self._topic, timeout=CONNECT_TIMEOUT_S).topics.get(self._topic)
        if meta is None or meta.error is not None:
            raise RtmlError(f"the dead-letter topic {self._topic!r} is missing: {meta and meta.error}")
        starts = {}
        for partition in sorted(meta.partitions):
            low, high = _watermarks(consumer, TopicPartition(self._topic, partition))
            if high > low:
                starts[partition] = (low, high)
        return starts

    def _messages(self, consumer: Consumer, ends: dict[int, int]) -> Iterator[Message]:
        """The data records up to each partition's end offset (taken when the read began).

        A read_committed consumer stops short of the end at an open transaction, and
        for a moment after a commit (the broker writes the commit markers after the
        producer's commit returns): wait up to ``SETTLE_S`` for it to move on, then
        count what is committed."""
        left = set(ends)
        stalled: dict[int, float] = {}  # partition -> when it first stopped short
        deadline = time.monotonic() + self._config.read_timeout_s
        while left:
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"reading the dead-letter topic {self._topic!r} to its end took more than "
                    f"{self._config.read_timeout_s:.0f} s. Fix: raise dead_letter.read_timeout_s, "
                    "or keep dead letters in a search index for big volumes"
                )
            for message in consumer.consume(num_messages=10_000, timeout=0.05):
                error = message.error()
                if error is None:
                    yield message
                elif error.code() == KafkaError._PARTITION_EOF:
                    stalled.setdefault(message.partition() or 0, time.monotonic())
                elif error.code() not in _SKIP:
                    raise KafkaException(error)
            now = time.monotonic()
            for tp in consumer.position([TopicPartition(self._topic, p) for p in left]):
                if tp.offset >= ends[tp.partition]:
                    left.discard(tp.partition)
                elif now - stalled.get(tp.partition, now) > SETTLE_S:
                    left.discard(tp.partition)  # an open transaction: not committed yet


def _from_message(message: Message) -> DeadLetter:
    pairs: Any = message.headers() or ()
    headers = tuple(
        (str(name), raw if isinstance(raw, bytes) else str(raw).encode())
        for name, raw in pairs
        if raw is not None
    )
    _, stamp = message.timestamp()
    value = message.value()
    key = message.key()
    return from_record(
        LogRecord(
            value=value if isinstance(value, bytes) else (value or "").encode(),
            key=key if isinstance(key, bytes) or key is None else key.encode(),
            headers=headers,
            timestamp_ms=max(stamp, 0),
            topic=message.topic() or "",
            partition=message.partition() or 0,
            offset=message.offset() or 0,
        )
    )


def _retarget(error: RtmlError) -> RtmlError:
    """The event log's errors name ``event_log.*`` settings; here they are ``dead_letter.*``."""
    text = str(error)
    if "event_log." not in text:
        return error
    try:
        return type(error)(text.replace("event_log.", "dead_letter."))
    except TypeError:  # an error class with its own constructor: keep it as it is
        return error


@contextmanager
def _ours() -> Iterator[None]:
    try:
        yield
    except RtmlError as exc:
        retargeted = _retarget(exc)
        if retargeted is exc:
            raise
        raise retargeted from exc.__cause__


def _watermarks(consumer: Consumer, partition: TopicPartition) -> tuple[int, int]:
    """The partition's (low, high) offsets. A retriable error (a topic created a moment ago
    has no leader yet: NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE) is retried for up to
    ``CONNECT_TIMEOUT_S``."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=CONNECT_TIMEOUT_S, cached=False)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0]
            if not (isinstance(error, KafkaError) and error.retriable()) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
