"""What the validator needs from Kafka beyond the event log port.

* :func:`tuned_log_config` -- the client settings that make a restart after ``kill -9``
  quick: a short ``transaction.timeout.ms`` (the broker aborts a killed copy's open
  transaction after it, and until then the group's committed offsets are "unstable" and
  its partitions wait), a short ``session.timeout.ms`` (a dead copy leaves the group
  sooner) and, when given, static membership (``group.instance.id``: a copy restarted
  with the same id gets its partitions back with no rebalance). Settings the user put in
  ``event_log.client`` win.
* :class:`ConsumerProbe` -- a consumer's assignment and lag. An empty poll on Kafka does
  not prove there is nothing left: the group may still be joining, or waiting for a
  killed copy's transaction to be aborted. ``--until-idle`` therefore also asks that
  every assigned partition be read to its end. On the embedded logs an empty poll is
  proof enough, and the probe says so.

The probe reads the confluent-kafka consumer inside rtml's Kafka consumer (the port has
no assignment or lag call); nothing here imports confluent-kafka.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from rtml.backends.event_log.base import LogConsumer
from rtml.backends.event_log.config import EventLogConfig, KafkaEventLogConfig
from rtml.config import ValidatorSettings
from rtml.services.logging import log_event
from rtml.timeutil import parse_duration

# An ``until_idle`` run with records left that it cannot read (a stuck partition) stops after
# this long without a record.
STALL_LIMIT_S = 60.0

KAFKA_LOGGER = "rtml.backends.event_log.kafka"
QUERY_TIMEOUT_S = 2.0
_ONE_MS = timedelta(milliseconds=1)


def _ms(duration: str) -> int:
    return parse_duration(duration) // _ONE_MS


def tuned_log_config(config: EventLogConfig, settings: ValidatorSettings) -> EventLogConfig:
    """``config`` with the validator's Kafka client settings added (other logs: as is)."""
    if not isinstance(config, KafkaEventLogConfig):
        return config
    session_ms = _ms(settings.session_timeout)
    ours = {
        "transaction.timeout.ms": str(_ms(settings.transaction_timeout)),
        "session.timeout.ms": str(session_ms),
        "heartbeat.interval.ms": str(max(100, session_ms // 4)),
    }
    if settings.instance_id:
        ours["group.instance.id"] = settings.instance_id
    quiet_config_warnings(set(ours))
    return config.model_copy(update={"client": {**ours, **config.client}})


class _ConfWarnFilter(logging.Filter):
    """Drops librdkafka's "is a consumer property and will be ignored by this producer"
    warnings about the settings above: the log gives its producers and consumers the
    same client settings, and each ignores the other's."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not ("CONFWARN" in text and any(f"property {name} " in text for name in self.names))


_FILTER = _ConfWarnFilter()


def quiet_config_warnings(names: set[str]) -> None:
    _FILTER.names |= names
    logger = logging.getLogger(KAFKA_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


class ConsumerProbe:
    """Assignment and lag of a consumer; for the embedded logs, "everything, no lag"."""

    def __init__(self, consumer: LogConsumer) -> None:
        # rtml's KafkaLogConsumer keeps its confluent_kafka.Consumer here.
        self._kafka: Any = getattr(consumer, "_consumer", None) if _is_kafka(consumer) else None

    @property
    def is_kafka(self) -> bool:
        return self._kafka is not None

    def assignment(self) -> frozenset[tuple[str, int]] | None:
        """The (topic, partition)s this consumer owns now; ``None``: all of them (embedded)."""
        if self._kafka is None:
            return None
        return frozenset((tp.topic, tp.partition) for tp in self._kafka.assignment())

    def lag(self, *, fresh: bool = False) -> int | None:
        """Records between this consumer's positions and the ends of its partitions.

        ``0`` on the embedded logs; ``None`` when unknown (no assignment yet, offsets not
        yet fetched, the broker slow to answer). ``fresh`` asks the broker for the ends
        and the committed offsets (a round trip); otherwise cached values are used.
        """
        if self._kafka is None:
            return 0
        try:
            return self._kafka_lag(fresh)
        except Exception:  # any client error only means "not known now"
            return None

    def drained(self, idle_since: float, logger: logging.Logger) -> bool:
        """Whether an ``until_idle`` run may stop after its empty polls: read to the end of
        every assigned partition (empty polls alone also happen while a new group is being
        assigned its partitions), or no record since ``idle_since`` for ``STALL_LIMIT_S``
        with records left (logged as ``idle_with_lag``)."""
        if self.caught_up():
            return True
        if time.monotonic() - idle_since > STALL_LIMIT_S:
            log_event(logger, "idle_with_lag", level=logging.WARNING, lag=self.lag())
            return True
        return False

    def caught_up(self) -> bool:
        """True when every partition of the assignment is read to its end."""
        if self._kafka is None:
            return True
        return self.lag(fresh=True) == 0

    def _kafka_lag(self, fresh: bool) -> int | None:
        consumer = self._kafka
        parts = consumer.assignment()
        if not parts:
            return None
        positions = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(parts)}
        unknown = [tp for tp in parts if positions.get((tp.topic, tp.partition), -1) < 0]
        if unknown:
            if not fresh:
                return None
            # Raises while a killed copy's transactional offsets are still pending.
            for tp in consumer.committed(unknown, timeout=QUERY_TIMEOUT_S):
                if tp.error is not None:
                    return None
                positions[(tp.topic, tp.partition)] = tp.offset
        total = 0
        for tp in parts:
            low, high = consumer.get_watermark_offsets(tp, timeout=QUERY_TIMEOUT_S, cached=not fresh)
            if high < 0:
                return None
            position = positions[(tp.topic, tp.partition)]
            total += max(0, high - (position if position >= 0 else low))
        return total


def _is_kafka(consumer: LogConsumer) -> bool:
    return type(consumer).__module__ == "rtml.backends.event_log.kafka"
