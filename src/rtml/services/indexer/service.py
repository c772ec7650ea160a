"""The dead-letter indexer: Kafka dead-letter topic -> OpenSearch/Elasticsearch ``_bulk``.

At scale the validator writes invalid events to the Kafka topic ``<project>.events.invalid``
in the same transaction as its valid outputs (exactly once). This service makes them
searchable: it reads the topic (``read_committed``) as the consumer group
``rtml-dead-letter-indexer``, sends each polled batch to the daily indices with ``_bulk``
``create`` actions whose ``_id`` is the letter's source position, waits for the bulk reply,
and only then commits its offsets. A crash between the two re-sends the batch on restart;
the index refuses the copies (same ``_id``), so every letter is one document: no letter is
lost and none is counted twice.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from rtml.backends.dead_letter.config import KafkaDeadLetterConfig, for_project
from rtml.backends.dead_letter.opensearch import OpenSearchDeadLetterSink
from rtml.backends.dead_letter.records import from_record
from rtml.backends.event_log.base import LogConsumer
from rtml.backends.event_log.config import KafkaEventLogConfig
from rtml.errors import ConfigError
from rtml.project import Project
from rtml.services.logging import log_event, service_logger
from rtml.services.validator.kafka_support import ConsumerProbe

GROUP = "rtml-dead-letter-indexer"
BATCH = 1000
POLL_TIMEOUT_S = 0.5


@dataclass
class IndexerStats:
    letters: int = 0
    batches: int = 0
    seconds: float = 0.0
    stopped_by: str = "error"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class IndexerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.letters = Counter(
            "rtml_indexer_letters", "Dead letters sent to the search index.", registry=self.registry
        )
        self.batches = Counter("rtml_indexer_batches", "Bulk requests acknowledged.", registry=self.registry)
        self.last_batch = Gauge(
            "rtml_indexer_last_batch_timestamp_seconds",
            "When the last batch was acknowledged (unix time).",
            registry=self.registry,
        )


class DeadLetterIndexer:
    """Copies ``dead_letter`` (type ``kafka``) into ``dead_letter.index`` (OpenSearch)."""

    def __init__(
        self,
        project: Project,
        *,
        logger: logging.Logger | None = None,
        group: str = GROUP,
        idle_polls: int = 2,
    ) -> None:
        config = project.config.dead_letter
        if not isinstance(config, KafkaDeadLetterConfig) or config.index is None:
            raise ConfigError(
                "the dead-letter indexer copies a Kafka dead-letter topic into a search index, but "
                f"dead_letter is {config.type!r} without an index. Fix: set "
                "dead_letter: {type: kafka, index: {url: http://HOST:9200}} in rtml.yaml"
            )
        filled = for_project(config, project=project.config.project, data_dir=project.data_dir)
        assert isinstance(filled, KafkaDeadLetterConfig) and filled.index is not None  # noqa: S101
        self.config = filled
        self.index = filled.index
        self.group = group
        self.idle_polls = idle_polls
        self.logger = logger or service_logger("rtml.indexer")
        self.metrics = IndexerMetrics()

    @property
    def topic(self) -> str:
        return self.config.topic or ""

    def run(self, until_idle: bool = False, stop: threading.Event | None = None) -> IndexerStats:
        """Index letters until ``stop`` is set or, with ``until_idle``, until the topic is drained."""
        from rtml.backends.event_log.kafka import KafkaEventLog

        stop = stop or threading.Event()
        stats = IndexerStats()
        started = time.monotonic()
        log = KafkaEventLog(
            KafkaEventLogConfig(bootstrap_servers=self.config.bootstrap_servers, client=self.config.client)
        )
        sink = OpenSearchDeadLetterSink(self.index)
        try:
            log.create_topic(self.topic, self.config.partitions)
            consumer = log.consumer([self.topic], self.group)
            log_event(self.logger, "indexer_started", topic=self.topic, index=sink.index_prefix)
            try:
                stats.stopped_by = self._loop(consumer, sink, stats, stop, until_idle)
            finally:
                consumer.close()
        finally:
            stats.seconds = round(time.monotonic() - started, 3)
            log_event(self.logger, "indexer_stopped", **stats.as_dict())
            sink.close()
            log.close()
        return stats

    def _loop(
        self,
        consumer: LogConsumer,
        sink: OpenSearchDeadLetterSink,
        stats: IndexerStats,
        stop: threading.Event,
        until_idle: bool,
    ) -> str:
        empty = 0
        probe = ConsumerProbe(consumer)
        idle_since = time.monotonic()
        while not stop.is_set():
            records = consumer.poll(BATCH, POLL_TIMEOUT_S)
            if not records:
                empty += 1
                if until_idle and empty >= self.idle_polls and probe.drained(idle_since, self.logger):
                    return "idle"
                continue
            empty = 0
            idle_since = time.monotonic()
            letters = [from_record(r) for r in records]
            sink.write(letters)  # raises on any refused letter: nothing is committed then
            consumer.commit()
            stats.letters += len(letters)
            stats.batches += 1
            self.metrics.letters.inc(len(letters))
            self.metrics.batches.inc()
            self.metrics.last_batch.set_to_current_time()
            log_event(self.logger, "indexed", letters=len(letters), total=stats.letters)
        return "stop"
