"""``ValidatorService``: the raw topic in; the valid topic, the duplicates topic and the
dead letters out; each raw event exactly once, across crashes.

One loop, one batch at a time:

1. poll up to ``batch_size`` raw records in the consumer group;
2. before the first batch (and on Kafka whenever the group hands this copy a partition it
   did not own), rebuild the dedupers (one per raw partition) from the valid topic --
   see :mod:`.reading`;
3. validate (:meth:`Validator.validate_many`) and route (:func:`.routing.route`);
4. hand over: dead letters to a non-transactional sink are written and flushed first
   (idempotent by raw position), then ONE ``produce_and_commit`` appends the valid
   records, the duplicate records (and, on Kafka with the Kafka sink, the dead letters)
   and commits the raw offsets -- all or nothing;
5. metrics, the alert window, one JSON log line.

A failed hand-over stops the service with the error (the polled batch is not committed
and the in-memory dedupers may hold ids of events never written): restart it, and it
resumes from the committed offsets with dedupers rebuilt from what was written.
See ``docs/validator.md`` for the argument.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rtml.backends.dead_letter import DeadLetterSink, open_dead_letter_sink
from rtml.backends.dead_letter.config import KafkaDeadLetterConfig
from rtml.backends.event_log.base import EventLog, LogConsumer, LogRecord
from rtml.backends.event_log.config import KafkaEventLogConfig
from rtml.backends.registry import open_backend
from rtml.config import ValidatorSettings
from rtml.core.validation import Validator
from rtml.project import RAW_EVENTS, VALID_EVENTS, Project
from rtml.services.logging import log_event, service_logger
from rtml.services.validator.alerts import InvalidRateWindow, announce
from rtml.services.validator.factory import build_deduper, build_validator, project_source
from rtml.services.validator.kafka_support import ConsumerProbe, tuned_log_config
from rtml.services.validator.metrics import ValidatorMetrics
from rtml.services.validator.reading import rebuild_dedupers
from rtml.services.validator.routing import DUPLICATE_EVENTS, PartitionDedupers, route
from rtml.timeutil import parse_duration, to_millis, utc_now

LOGGER = "rtml.validator"


@dataclass
class ValidatorStats:
    """What one :meth:`ValidatorService.run` did."""

    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    batches: int = 0
    invalid_by_code: Counter[str] = field(default_factory=Counter)
    rebuilds: int = 0
    rebuilt_records: int = 0
    rebuild_seconds: float = 0.0
    alerts: int = 0
    busy_seconds: float = 0.0  # validating, routing and handing over
    seconds: float = 0.0  # the whole run, start-up and idle polls included
    stopped_by: str = ""  # "idle", "stop" or "error"

    @property
    def events(self) -> int:
        return self.valid + self.invalid + self.duplicates

    @property
    def events_per_s(self) -> float:
        return self.events / self.busy_seconds if self.busy_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "valid": self.valid,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "batches": self.batches,
            "invalid_by_code": dict(self.invalid_by_code.most_common()),
            "rebuilds": self.rebuilds,
            "rebuilt_records": self.rebuilt_records,
            "rebuild_seconds": round(self.rebuild_seconds, 3),
            "alerts": self.alerts,
            "busy_seconds": round(self.busy_seconds, 3),
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.events_per_s),
            "stopped_by": self.stopped_by,
        }


class ValidatorService:
    """The validator of ``project``; :meth:`run` it (again and again, if you like).

    ``now`` overrides ``validator.clock`` (what future timestamps are judged against);
    the time received of a dead letter is always the wall clock. ``log`` and ``sink`` may
    be given (tests, an embedding application): they are then used as they are and not
    closed. Otherwise each :meth:`run` opens the configured ones
    (on Kafka with the validator's client settings, see :mod:`.kafka_support`).
    """

    def __init__(
        self,
        project: Project,
        *,
        group: str | None = None,
        settings: ValidatorSettings | None = None,
        log: EventLog | None = None,
        sink: DeadLetterSink | None = None,
        metrics: ValidatorMetrics | None = None,
        now: Callable[[], datetime] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        settings = settings or project.config.validator
        if group is not None:
            settings = settings.model_copy(update={"group": group})
        self.project = project
        self.settings = settings
        self.metrics = metrics or ValidatorMetrics()
        self.raw_topic = project.topic(RAW_EVENTS)
        self.valid_topic = project.topic(VALID_EVENTS)
        self.duplicates_topic = project.topic(DUPLICATE_EVENTS)
        self.given_log = log
        self.given_sink = sink
        self.logger = logger or service_logger(LOGGER)
        self.poll_timeout_s = parse_duration(settings.poll_timeout) / timedelta(seconds=1)
        self.id_field = project_source(project, settings).id_field
        self.validator: Validator = build_validator(project, settings, now=now)

    # -- the loop ----------------------------------------------------------------------

    def run(self, until_idle: bool = False, stop: threading.Event | None = None) -> ValidatorStats:
        """Validate until ``stop`` is set or, with ``until_idle``, until nothing is left."""
        stop = stop or threading.Event()
        stats = ValidatorStats()
        started = time.monotonic()
        log = self.given_log or open_backend(
            "event_log", tuned_log_config(self.project.config.event_log, self.settings)
        )
        sink: DeadLetterSink | None = None
        try:
            sink = self.given_sink or open_dead_letter_sink(
                self.project.config.dead_letter,
                project=self.project.config.project,
                data_dir=self.project.data_dir,
            )
            for topic in (self.raw_topic, self.valid_topic, self.duplicates_topic):
                log.create_topic(topic)
            stats.stopped_by = "error"  # unless the loop returns
            stats.stopped_by = _Loop(self, log, sink, stats, stop).run(until_idle)
        finally:
            stats.seconds = time.monotonic() - started
            log_event(self.logger, "validator_stopped", group=self.settings.group, **stats.as_dict())
            if sink is not None and self.given_sink is None:
                sink.close()
            if self.given_log is None:
                log.close()
        return stats


class _Loop:
    """One run's state: the consumer, the dedupers, the alert window."""

    def __init__(
        self,
        service: ValidatorService,
        log: EventLog,
        sink: DeadLetterSink,
        stats: ValidatorStats,
        stop: threading.Event,
    ) -> None:
        self.s = service
        self.log = log
        self.sink = sink
        self.stats = stats
        self.stop = stop
        self.settings = service.settings
        self.dedupers = PartitionDedupers(lambda: build_deduper(self.settings))
        self.window = InvalidRateWindow(self.settings.alert)
        self.letters_in_txn = _letters_in_transaction(service, log, sink)
        self.covered: frozenset[tuple[str, int]] | None = None  # partitions the dedupers know
        self.rebuilt = False

    def run(self, until_idle: bool) -> str:
        settings, s = self.settings, self.s
        log_event(
            s.logger,
            "validator_started",
            project=s.project.config.project,
            group=settings.group,
            raw_topic=s.raw_topic,
            event_log=s.project.config.event_log.type,
            dead_letter=s.project.config.dead_letter.type,
            letters_in_transaction=self.letters_in_txn,
            batch_size=settings.batch_size,
            dedupe_horizon=settings.dedupe_horizon,
            until_idle=until_idle,
        )
        consumer = self.log.consumer([s.raw_topic], settings.group)
        probe = ConsumerProbe(consumer)
        try:
            empty = 0
            idle_since = time.monotonic()
            while not self.stop.is_set():
                records = consumer.poll(settings.batch_size, s.poll_timeout_s)
                if not records:
                    empty += 1
                    s.metrics.lag.set(probe.lag() or 0)
                    if until_idle and empty >= settings.idle_polls and probe.drained(idle_since, s.logger):
                        return "idle"
                    continue
                empty = 0
                idle_since = time.monotonic()
                self._know_partitions(probe)
                if self.stop.is_set():  # stopped during a rebuild: leave the batch uncommitted
                    break
                self._hand_over(records, consumer, probe)
            return "stop"
        finally:
            consumer.close()

    def _know_partitions(self, probe: ConsumerProbe) -> None:
        """Rebuild the dedupers before the first batch, and when Kafka gave this copy a
        partition it did not own (another copy may have accepted events there since)."""
        assigned = probe.assignment()
        if self.rebuilt and (assigned is None or self.covered is None or assigned <= self.covered):
            self.covered = assigned
            return
        s = self.s
        started = time.monotonic()
        # From scratch: the valid topic is the truth, for our old partitions as well.
        self.dedupers = PartitionDedupers(lambda: build_deduper(self.settings))
        read = rebuild_dedupers(
            self.log,
            s.valid_topic,
            self.dedupers,
            partitions=None if assigned is None else {p for t, p in assigned if t == s.raw_topic},
            poll_timeout=s.poll_timeout_s,
            idle_polls=self.settings.idle_polls,
            stop=self.stop,
        )
        seconds = time.monotonic() - started
        self.rebuilt, self.covered = True, assigned
        self.stats.rebuilds += 1
        self.stats.rebuilt_records += read
        self.stats.rebuild_seconds += seconds
        s.metrics.rebuild_seconds.set(seconds)
        s.metrics.dedupe_ids.set(len(self.dedupers))
        log_event(
            s.logger,
            "dedupe_rebuilt",
            valid_topic=s.valid_topic,
            records=read,
            ids=len(self.dedupers),
            seconds=round(seconds, 3),
            partitions=None if assigned is None else sorted(p for _, p in assigned),
        )

    def _hand_over(self, records: list[LogRecord], consumer: LogConsumer, probe: ConsumerProbe) -> None:
        s, stats = self.s, self.stats
        started = time.perf_counter()
        outcomes = s.validator.validate_many([r.value if r.value is not None else b"" for r in records])
        batch = route(records, outcomes, self.dedupers, received_ms=to_millis(utc_now()), id_field=s.id_field)
        outputs: dict[str, list[LogRecord]] = {
            s.valid_topic: batch.valid,
            s.duplicates_topic: batch.duplicates,
        }
        try:
            if batch.letters:
                sink: Any = self.sink
                if self.letters_in_txn:
                    outputs[sink.topic] = sink.to_records(batch.letters)
                else:  # idempotent by position, and durable before the offsets move
                    sink.write(batch.letters)
                    sink.flush()
            self.log.produce_and_commit(outputs, consumer)
        except Exception as exc:
            log_event(s.logger, "handover_failed", level=logging.ERROR, events=len(records), error=str(exc))
            raise
        seconds = time.perf_counter() - started

        valid, dups, invalid = len(batch.valid), len(batch.duplicates), len(batch.letters)
        stats.valid += valid
        stats.duplicates += dups
        stats.invalid += invalid
        stats.invalid_by_code.update(batch.invalid_by_code)
        stats.batches += 1
        stats.busy_seconds += seconds
        s.metrics.record_batch(
            valid=valid, invalid=invalid, duplicates=dups, by_code=batch.invalid_by_code, seconds=seconds
        )
        s.metrics.dedupe_ids.set(len(self.dedupers))
        lag = probe.lag()
        if lag is not None:
            s.metrics.lag.set(lag)
        change = self.window.observe(batch.events, batch.invalid_by_code)
        s.metrics.invalid_rate.set(self.window.rate)
        if change is not None:
            if change.state == "firing":
                stats.alerts += 1
                s.metrics.alerts.inc()
            s.metrics.alert_firing.set(1 if change.state == "firing" else 0)
            context = {"project": s.project.config.project, "group": self.settings.group}
            announce(change, self.settings.alert, logger=s.logger, context=context)
        log_event(
            s.logger,
            "batch",
            events=len(records),
            valid=valid,
            invalid=invalid,
            duplicates=dups,
            invalid_by_code=dict(batch.invalid_by_code),
            seconds=round(seconds, 4),
            events_per_s=round(len(records) / seconds) if seconds > 0 else None,
            invalid_rate_window=round(self.window.rate, 4),
            lag=lag,
        )


def _letters_in_transaction(service: ValidatorService, log: EventLog, sink: DeadLetterSink) -> bool:
    """On Kafka with the Kafka dead-letter topic on the same cluster, the letters join the
    validator's transaction; otherwise they are written (and flushed) before it."""
    if not getattr(sink, "transactional", False) or type(log).__module__ != "rtml.backends.event_log.kafka":
        return False
    if service.given_log is not None or service.given_sink is not None:
        return True  # given by the caller: assumed to be one cluster
    log_config, sink_config = service.project.config.event_log, service.project.config.dead_letter
    return isinstance(log_config, KafkaEventLogConfig) and (
        isinstance(sink_config, KafkaDeadLetterConfig)
        and sink_config.bootstrap_servers == log_config.bootstrap_servers
    )
