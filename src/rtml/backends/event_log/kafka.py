"""Apache Kafka through confluent-kafka (librdkafka).

- The producer is idempotent with ``acks=all``: a record that ``flush`` reports
  delivered is on every in-sync replica, once.
- Keys are partitioned by librdkafka's default ``consistent_random`` partitioner, which
  is CRC32 of the key modulo the partition count -- the same as ``partition_for``.
- Consumers never auto-commit; ``commit()`` synchronously commits the position after
  the records ``poll`` returned, so the group resumes there.
- Every call that talks to the broker is bounded in time; an unreachable broker raises
  :class:`~rtml.errors.BackendUnavailableError` saying how to start it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from rtml.backends.event_log.base import LogConsumer, LogRecord, check_topic
from rtml.backends.event_log.config import KafkaEventLogConfig
from rtml.errors import BackendUnavailableError, ConfigError, RtmlError

logger = logging.getLogger(__name__)

_DEFAULT: Any = object()  # "use the log's delivery callback"
CONNECT_TIMEOUT_S = 10.0  # metadata and admin requests
PRODUCE_BLOCK_S = 30.0  # how long produce() waits for room in a full local queue
# Consumer errors librdkafka recovers from by itself: skip them.
_TRANSIENT = {
    KafkaError._PARTITION_EOF,
    KafkaError._TRANSPORT,
    KafkaError.UNKNOWN_TOPIC_OR_PART,  # metadata of a just-created topic not yet spread
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}
_UNREACHABLE = {
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError._MSG_TIMED_OUT,
    KafkaError._RESOLVE,
}


class KafkaEventLog:
    """Topics on a Kafka cluster. Thread-safe (one shared producer)."""

    def __init__(self, config: KafkaEventLogConfig) -> None:
        self._config = config
        self._servers = config.bootstrap_servers
        self._client = {"bootstrap.servers": self._servers, "logger": logger, **config.client}
        self._lock = threading.Lock()
        self._failed = 0  # undelivered records since the last flush
        self._first_failure: KafkaError | None = None
        self._known: set[str] = set()
        self._producer: Producer | None = None
        self._txn_producer: Producer | None = None
        self._admin = _build(AdminClient, self._client)
        self._metadata()  # fail now, clearly, if the broker is not there

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        """Create ``name`` if missing; wait until its partitions have leaders."""
        count = self._config.partitions if partitions is None else partitions
        check_topic(name, count)
        topic = NewTopic(
            name,
            num_partitions=count,
            replication_factor=self._config.replication_factor,
            config=dict(self._config.topic_config),
        )
        future = self._admin.create_topics([topic], request_timeout=CONNECT_TIMEOUT_S)[name]
        try:
            future.result(timeout=CONNECT_TIMEOUT_S + 5)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise self._error(error, f"creating topic {name!r}") from exc
        except TimeoutError as exc:
            raise self._unreachable(f"creating topic {name!r} timed out") from exc
        self._wait_for_leaders(name)
        self._known.add(name)

    def produce(self, topic: str, records: Sequence[LogRecord]) -> None:
        """Queue ``records``; ``flush`` waits for (and checks) their delivery."""
        if not records:
            return
        self._ensure_topics([topic])
        producer = self._get_producer()
        for record in records:
            self._send(producer, topic, record)
        producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued record is acknowledged; raise if any failed."""
        if self._producer is None:
            return
        pending = self._producer.flush(timeout)
        with self._lock:
            failed, first = self._failed, self._first_failure
            self._failed, self._first_failure = 0, None
        if first is not None:
            if first.fatal():
                self._producer = None  # a fatal idempotence error: start a fresh producer
            raise self._error(first, f"{failed} record(s) were not delivered (first error)")
        if pending:
            raise self._unreachable(f"{pending} record(s) not delivered within {timeout:.0f} s")

    def produce_and_commit(self, outputs: Mapping[str, Sequence[LogRecord]], consumer: LogConsumer) -> None:
        """One Kafka transaction: the outputs and the consumer group's offsets commit
        together (consumers of the outputs read with ``isolation.level=read_committed``)."""
        if not isinstance(consumer, KafkaLogConsumer):
            raise RtmlError("produce_and_commit needs a consumer of this Kafka log")
        self._ensure_topics([t for t, records in outputs.items() if records])
        producer = self._get_transactional()
        try:
            producer.begin_transaction()
            for topic, records in outputs.items():
                for record in records:
                    self._send(producer, topic, record, on_delivery=None)
            offsets = consumer._uncommitted()
            if offsets:
                producer.send_offsets_to_transaction(
                    offsets, consumer._consumer.consumer_group_metadata(), CONNECT_TIMEOUT_S
                )
            producer.commit_transaction(CONNECT_TIMEOUT_S * 3)
        except KafkaException as exc:
            error = exc.args[0]
            self._abort(producer, error)
            raise self._error(error, "committing a transaction") from exc
        consumer._mark_committed()

    def _get_transactional(self) -> Producer:
        with self._lock:
            if self._txn_producer is None:
                settings = {
                    **self._client,
                    "transactional.id": f"rtml-{uuid.uuid4().hex}",
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                }
                producer = _build(Producer, settings)
                try:
                    producer.init_transactions(CONNECT_TIMEOUT_S)
                except KafkaException as exc:
                    raise self._error(exc.args[0], "starting a transactional producer") from exc
                self._txn_producer = producer
            return self._txn_producer

    def _abort(self, producer: Producer, error: KafkaError) -> None:
        """Abort after a failed transaction; a fatal error retires the producer."""
        if error.fatal() or not error.txn_requires_abort():
            if error.fatal():
                self._txn_producer = None
            return
        try:
            producer.abort_transaction(CONNECT_TIMEOUT_S)
        except KafkaException:
            self._txn_producer = None

    def consumer(self, topics: Sequence[str], group: str) -> KafkaLogConsumer:
        """A member of ``group`` subscribed to ``topics`` (created if missing)."""
        names = list(dict.fromkeys(topics))
        if not names:
            raise RtmlError("a consumer needs at least one topic")
        self._ensure_topics(names)
        settings = {
            **self._client,
            "group.id": group,
            "enable.auto.commit": False,  # commit() only: at-least-once
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",  # never see aborted transactional outputs
        }
        return KafkaLogConsumer(settings, names, group, self._servers)

    def close(self) -> None:
        self._txn_producer = None
        if self._producer is not None:
            left = self._producer.flush(CONNECT_TIMEOUT_S)
            if left:
                logger.warning("closing the Kafka producer with %d undelivered record(s)", left)
            self._producer = None

    def __enter__(self) -> KafkaEventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------

    def _get_producer(self) -> Producer:
        with self._lock:
            if self._producer is None:
                settings = {
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    **self._client,
                }
                self._producer = _build(Producer, settings)
            return self._producer

    def _send(self, producer: Producer, topic: str, record: LogRecord, on_delivery: Any = _DEFAULT) -> None:
        deadline = time.monotonic() + PRODUCE_BLOCK_S
        while True:
            try:
                producer.produce(
                    topic,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers) or None,
                    timestamp=record.timestamp_ms or 0,  # 0: now
                    on_delivery=self._on_delivery if on_delivery is _DEFAULT else on_delivery,
                )
                return
            except BufferError:  # the local queue is full: serve deliveries, retry
                if time.monotonic() > deadline:
                    raise self._unreachable(
                        f"the producer queue stayed full for {PRODUCE_BLOCK_S:.0f} s"
                    ) from None
                producer.poll(0.1)
            except KafkaException as exc:  # refused locally, e.g. a record too large
                raise self._error(exc.args[0], f"producing to {topic!r}") from exc

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            with self._lock:
                self._failed += 1
                self._first_failure = self._first_failure or error

    def _metadata(self, topic: str | None = None) -> Any:
        try:
            return self._admin.list_topics(topic=topic, timeout=CONNECT_TIMEOUT_S)
        except KafkaException as exc:
            raise self._error(exc.args[0], "reading cluster metadata") from exc

    def _ensure_topics(self, names: Sequence[str]) -> None:
        missing = [n for n in names if n not in self._known]
        if not missing:
            return
        for name in missing:
            check_topic(name)
        listed = self._metadata().topics
        for name in missing:
            if name in listed and listed[name].error is None:
                self._known.add(name)
            else:
                self.create_topic(name)

    def _wait_for_leaders(self, name: str) -> None:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while time.monotonic() < deadline:
            meta = self._metadata(name).topics.get(name)
            if (
                meta is not None
                and meta.error is None
                and meta.partitions
                and all(p.leader >= 0 for p in meta.partitions.values())
            ):
                return
            time.sleep(0.1)
        raise self._unreachable(f"topic {name!r} has no leader after {CONNECT_TIMEOUT_S:.0f} s")

    def _unreachable(self, what: str) -> BackendUnavailableError:
        return unreachable(self._servers, what)

    def _error(self, error: KafkaError, what: str) -> RtmlError:
        return translate(error, self._servers, what)


class KafkaLogConsumer:
    """One member of a Kafka consumer group; use it from one thread."""

    def __init__(self, settings: dict[str, Any], topics: Sequence[str], group: str, servers: str) -> None:
        self._servers = servers
        self._group = group
        self._errors: list[KafkaError] = []
        settings = {**settings, "error_cb": self._errors.append}
        self._consumer = _build(Consumer, settings)
        self._consumer.subscribe(list(topics), on_revoke=self._on_revoke)
        self._positions: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}
        self._closed = False

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[LogRecord]:
        """Up to ``max_records`` records (at most 1,000,000 per call); [] when idle."""
        self._check_open()
        if max_records < 1:
            return []
        try:
            messages = self._consumer.consume(num_messages=min(max_records, 1_000_000), timeout=timeout)
        except KafkaException as exc:
            raise translate(exc.args[0], self._servers, "consuming") from exc
        self._raise_client_errors()
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() in _TRANSIENT:
                    continue
                where = f"consuming {message.topic()}[{message.partition()}]"
                raise translate(error, self._servers, where)
            records.append(_to_record(message))
            self._positions[(message.topic(), message.partition())] = message.offset() + 1
        return records

    def commit(self) -> None:
        """Commit, synchronously, the position after every record polled so far."""
        self._check_open()
        offsets = self._uncommitted()
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError._NO_OFFSET:
                raise translate(error, self._servers, f"committing group {self._group!r}") from exc
        self._mark_committed()

    def _uncommitted(self) -> list[TopicPartition]:
        return [
            TopicPartition(t, p, pos)
            for (t, p), pos in self._positions.items()
            if self._committed.get((t, p)) != pos
        ]

    def _mark_committed(self) -> None:
        self._committed.update(self._positions)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._consumer.close()

    def __enter__(self) -> KafkaLogConsumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RtmlError(f"this consumer of group {self._group!r} is closed")

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Polled but uncommitted records of a revoked partition are re-delivered to
        # its next owner (at-least-once); forget our positions there.
        for tp in partitions:
            self._positions.pop((tp.topic, tp.partition), None)
            self._committed.pop((tp.topic, tp.partition), None)

    def _raise_client_errors(self) -> None:
        errors, self._errors[:] = list(self._errors), []
        for error in errors:
            if error.fatal() or error.code() == KafkaError._ALL_BROKERS_DOWN:
                raise translate(error, self._servers, f"consumer of group {self._group!r}")
            logger.debug("kafka consumer: %s", error.str())


def _to_record(message: Message) -> LogRecord:
    kind, stamp = message.timestamp()
    headers: Any = message.headers() or ()
    return LogRecord(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=_as_bytes(message.key()),
        value=_as_bytes(message.value()) or b"",
        headers=tuple((str(k), _as_bytes(v) or b"") for k, v in headers),
        timestamp_ms=None if kind == TIMESTAMP_NOT_AVAILABLE else stamp,
    )


def _as_bytes(data: str | bytes | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def _build(kind: Any, settings: dict[str, Any]) -> Any:
    """Make a librdkafka client; a bad setting is a configuration error."""
    try:
        return kind(settings)
    except (KafkaException, ValueError, TypeError) as exc:
        raise ConfigError(
            f"invalid Kafka client settings ({exc}). Fix: check event_log.client in rtml.yaml"
        ) from exc


def unreachable(servers: str, what: str) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"Kafka at {servers} is not reachable: {what}. Fix: start it (`make services`, i.e. "
        "bash scripts/services.sh start), or fix event_log.bootstrap_servers in rtml.yaml"
    )


def translate(error: KafkaError, servers: str, what: str) -> RtmlError:
    """An rtml error for a librdkafka error: unreachable broker vs anything else."""
    if error.code() in _UNREACHABLE:
        return unreachable(servers, f"{what}: {error.str()}")
    return RtmlError(f"Kafka at {servers}: {what} failed: {error.str()} ({error.name()})")
