"""``EngineService``: the valid topic in; per-key feature state online and every valid
event offline, each event counted exactly once across crashes.

One loop, one polled batch at a time:

1. skip the records the restored checkpoint already holds (offset at or before its
   position for their partition: the consumer group's committed offsets may lag it);
2. decode (:mod:`.decode`), advance the watermark and count the late events;
3. hand the events to the offline appender (background, idempotent by ``event_id``);
4. ``Aggregator.apply`` -- every view of the source, one vectorized pass each;
5. when a checkpoint is due (``checkpoint_interval`` / ``checkpoint_events``): wait for
   the offline appends, snapshot the state;
6. write the touched keys' state blobs per view; the checkpoint rides on the last write
   (one atomic step with those blobs); then commit the consumer's offsets;
7. freshness of the live events, metrics, one JSON log line.

See docs/engine.md for the argument that nothing is lost or counted twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from rtml.backends.event_log.base import EventLog, LogConsumer, LogRecord
from rtml.backends.offline_store import OfflineStore
from rtml.backends.online_store import OnlineStore
from rtml.core.aggregation.state import KEY_VERSION
from rtml.errors import RtmlError
from rtml.offline import event_tables, offline_store
from rtml.project import VALID_EVENTS, Project
from rtml.services.engine import checkpoint as ckpt
from rtml.services.engine.decode import BatchDecoder
from rtml.services.engine.metrics import EngineMetrics
from rtml.services.engine.scope import build_aggregator, engine_source, engine_views, wall_ms
from rtml.services.engine.settings import EngineSettings
from rtml.services.engine.stats import EngineStats, Freshness, Watermark
from rtml.services.engine.stores import OfflineAppender, OnlineWriter, open_online, touched_keys
from rtml.services.logging import log_event, service_logger
from rtml.services.validator.kafka_support import ConsumerProbe
from rtml.timeutil import parse_duration

LOGGER = "rtml.engine"
LAG_EVERY_S = 1.0
_S = timedelta(seconds=1)
_MS = timedelta(milliseconds=1)


class EngineService:
    """The feature engine of ``project``; :meth:`run` it (again and again, if you like).

    ``log``, ``online`` and ``offline`` may be given (tests, an embedding application):
    they are then used as they are and not closed. Otherwise each :meth:`run` opens the
    configured ones. ``clock`` (wall time in ms) is what freshness is measured with.
    """

    def __init__(
        self,
        project: Project,
        *,
        settings: EngineSettings | None = None,
        log: EventLog | None = None,
        online: OnlineStore | None = None,
        offline: OfflineStore | None = None,
        metrics: EngineMetrics | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.project = project
        self.settings = settings or project.config.engine
        self.metrics = metrics or EngineMetrics()
        self.logger = logger or service_logger(LOGGER)
        self.clock = clock
        self.topic = project.topic(VALID_EVENTS)
        self.source = engine_source(project, self.settings)
        self.views = engine_views(project, self.source)
        self.table = event_tables(project)[self.source.name]
        self.given_log, self.given_online, self.given_offline = log, online, offline
        self.poll_timeout_s = parse_duration(self.settings.poll_timeout) / _S
        self.checkpoint_name = ckpt.checkpoint_name(self.settings.group)

    def run(self, until_idle: bool = False, stop: threading.Event | None = None) -> EngineStats:
        """Apply valid events until ``stop`` is set or, with ``until_idle``, until none is left."""
        stop = stop or threading.Event()
        stats = EngineStats(views=len(self.views))
        started = time.monotonic()
        opened: list[Any] = []
        try:
            log = self.given_log or _opened(opened, self.project.event_log())
            online = self.given_online or _opened(opened, open_online(self.project))
            offline = self.given_offline or _opened(opened, offline_store(self.project))
            log.create_topic(self.topic)
            stats.stopped_by = "error"  # unless the loop returns
            stats.stopped_by = _Loop(self, log, online, offline, stats, stop).run(until_idle)
        finally:
            stats.seconds = time.monotonic() - started
            log_event(self.logger, "engine_stopped", group=self.settings.group, **stats.as_dict())
            for resource in reversed(opened):
                resource.close()
        return stats


def _opened(opened: list[Any], resource: Any) -> Any:
    opened.append(resource)
    return resource


class _Loop:
    """One run's state: the aggregator, positions, watermark, appender and writer."""

    def __init__(
        self,
        service: EngineService,
        log: EventLog,
        online: OnlineStore,
        offline: OfflineStore,
        stats: EngineStats,
        stop: threading.Event,
    ) -> None:
        s = self.s = service
        self.log, self.online, self.stats, self.stop = log, online, stats, stop
        self.settings = s.settings
        self.aggregator = build_aggregator(s.views, s.settings)
        self.decoder = BatchDecoder(s.source, s.views)
        self.writer = OnlineWriter(online, self.aggregator, incremental=True)
        self.appender = OfflineAppender(offline, s.table, s.settings.offline_batch)
        lateness = parse_duration(s.source.allowed_lateness) // _MS
        self.watermark = Watermark(lateness)
        self.freshness = stats.freshness = Freshness(parse_duration(s.settings.freshness_horizon) // _MS)
        self.positions: dict[int, int] = {}
        self.counts: dict[str, int] = {"applied": 0, "late": 0, "dropped": 0}
        self.skipping: set[int] | None = None  # partitions still at or before the checkpoint
        self.restored = False
        self.fresh_checked: set[int] = set()
        self.interval_s = parse_duration(s.settings.checkpoint_interval) / _S
        self.since_checkpoint = 0
        self.last_checkpoint = self.last_flush = time.monotonic()
        self.lag_at = 0.0
        self.first_batch_at: float | None = None
        self.state_interval_s = parse_duration(s.settings.state_interval) / _S

    # -- start --------------------------------------------------------------------------

    def restore(self) -> None:
        s = self.s
        found = ckpt.load(self.online, s.checkpoint_name)
        stored = {v.name: self.online.fingerprint(v.name) for v in s.views}
        ckpt.check_views(found, s.views, stored)
        if found is not None:
            if found.topic != s.topic or found.source != s.source.name:
                raise RtmlError(
                    f"the engine checkpoint {s.checkpoint_name!r} is of topic {found.topic!r} (source "
                    f"{found.source!r}), not {s.topic!r}. Fix: give this engine another engine.group, "
                    "or run `rtml materialize`"
                )
            ckpt.check_state_format(found, s.checkpoint_name)
            self.aggregator.restore(found.snapshot)
            self.positions = dict(found.positions)
            self.counts.update(found.counts)
            self.watermark.max_by_partition = dict(found.max_event_by_partition)
            self.skipping = set(self.positions)
            self.restored = True
            self.stats.restored = True
            self.stats.restored_positions = dict(found.positions)
        for view in s.views:
            if stored.get(view.name) is None:
                self.online.set_fingerprint(view.name, view.fingerprint())

    def run(self, until_idle: bool) -> str:
        s, settings = self.s, self.settings
        self.restore()
        log_event(
            s.logger,
            "engine_started",
            project=s.project.config.project,
            group=settings.group,
            topic=s.topic,
            views=[v.name for v in s.views],
            online_store=s.project.config.online_store.type,
            offline_store=s.project.config.offline_store.type,
            restored=self.restored,
            positions=self.positions,
            watermark_ms=self.watermark.watermark_ms,
            until_idle=until_idle,
        )
        consumer = self.log.consumer([s.topic], settings.group)
        probe = ConsumerProbe(consumer)
        clean = False
        try:
            empty = 0
            idle_since = time.monotonic()
            while not self.stop.is_set():
                records = consumer.poll(settings.batch_size, s.poll_timeout_s)
                if records:
                    empty = 0
                    idle_since = time.monotonic()
                    self._batch(records, consumer, probe)
                    continue
                empty += 1
                if self.since_checkpoint and empty >= settings.idle_polls:  # quiet: make it durable now
                    self._checkpoint_alone(consumer)
                self._lag(probe)
                if until_idle and empty >= settings.idle_polls and probe.drained(idle_since, s.logger):
                    clean = True
                    return "idle"
            clean = True
            return "stop"
        finally:
            try:
                if clean and self.since_checkpoint:
                    self._checkpoint_alone(consumer)
            finally:
                self.appender.close()
                consumer.close()
                self.stats.offline_new = self.appender.appended

    # -- one batch ----------------------------------------------------------------------

    def _batch(self, records: list[LogRecord], consumer: LogConsumer, probe: ConsumerProbe) -> None:
        s, stats, settings = self.s, self.stats, self.settings
        started = time.perf_counter()
        records = self._unseen(records, probe)
        if not records:
            return
        decoded = self.decoder.decode(records)
        late = self.watermark.observe(decoded.ts_ms, decoded.partitions)
        self.appender.add(decoded.events)
        applied = self.aggregator.apply(decoded.batch)
        for record in records:  # offsets grow within a partition: the last one wins
            self.positions[record.partition] = record.offset
        n = len(records)
        self.since_checkpoint += n
        dropped = {name: a.dropped for name, a in applied.items() if a.dropped}
        self._count(n, late, dropped)
        self.writer.add(touched_keys(self.aggregator, decoded.batch, applied), decoded.ts_ms)
        checkpoint = self._take_checkpoint() if self._due() else None
        behind = len(records) >= settings.batch_size  # a full poll: more are waiting
        written: dict[str, int] = {}
        if (
            checkpoint is not None
            or not behind
            or time.monotonic() - self.last_flush >= self.state_interval_s
        ):
            written = self._flush(checkpoint)
            if checkpoint is not None:
                consumer.commit()
                self._checkpointed(checkpoint[1])
        seconds = time.perf_counter() - started
        stats.batches += 1
        stats.busy_seconds += seconds
        if self.first_batch_at is None:
            self.first_batch_at = started
        stats.active_seconds = time.perf_counter() - self.first_batch_at
        stats.offline_new = self.appender.appended
        s.metrics.batch_seconds.observe(seconds)
        lag = self._lag(probe)
        log_event(
            s.logger,
            "batch",
            events=n,
            late=late,
            dropped=dropped,
            keys_written=written,
            checkpoint=checkpoint is not None,
            watermark_ms=self.watermark.watermark_ms,
            seconds=round(seconds, 4),
            events_per_s=round(n / seconds) if seconds > 0 else None,
            lag=lag,
        )

    def _lag(self, probe: ConsumerProbe) -> int | None:
        """The consumer's lag (a broker round trip on Kafka), at most once a second."""
        now = time.monotonic()
        if now - self.lag_at < LAG_EVERY_S:
            return None
        self.lag_at = now
        lag = probe.lag()
        if lag is not None:
            self.s.metrics.lag.set(lag)
        return lag

    def _unseen(self, records: list[LogRecord], probe: ConsumerProbe) -> list[LogRecord]:
        """Drop records the restored state holds already; check a fresh start is one."""
        if not self.restored:
            self._check_fresh_start(records, probe)
        if not self.skipping:
            return records
        positions, skipping = self.positions, self.skipping
        kept = [r for r in records if r.offset > positions.get(r.partition, -1)]
        for record in kept:
            skipping.discard(record.partition)
        skipped = len(records) - len(kept)
        if skipped:
            self.stats.skipped += skipped
            self.s.metrics.skipped.inc(skipped)
        return kept

    def _check_fresh_start(self, records: list[LogRecord], probe: ConsumerProbe) -> None:
        """With no checkpoint the engine must read each partition from its start: a first
        record past offset 0 means the group consumed before, into state that is gone."""
        for record in records:
            if record.partition in self.fresh_checked:
                continue
            self.fresh_checked.add(record.partition)
            if record.offset > 0 and (not probe.is_kafka or ckpt.group_has_committed(probe, record)):
                raise RtmlError(
                    f"the online store holds no engine checkpoint, but consumer group "
                    f"{self.settings.group!r} has read {record.topic} partition {record.partition} "
                    f"up to offset {record.offset} before: the online state was lost or replaced. "
                    "Fix: run `rtml materialize` to rebuild it from the offline store"
                )

    def _count(self, n: int, late: int, dropped: dict[str, int]) -> None:
        s, stats = self.s, self.stats
        stats.events += n
        stats.late += late
        stats.dropped.update(dropped)
        stats.watermark_ms = self.watermark.watermark_ms
        self.counts["applied"] += n
        self.counts["late"] += late
        self.counts["dropped"] += sum(dropped.values())
        s.metrics.events.inc(n)
        s.metrics.late.inc(late)
        for name, count in dropped.items():
            s.metrics.dropped.labels(name).inc(count)
        if stats.watermark_ms is not None:
            s.metrics.watermark.set(stats.watermark_ms / 1000)

    # -- checkpoints --------------------------------------------------------------------

    def _due(self) -> bool:
        return (
            self.since_checkpoint >= self.settings.checkpoint_events
            or time.monotonic() - self.last_checkpoint >= self.interval_s
        )

    def _take_checkpoint(self) -> tuple[str, bytes]:
        """Wait for the offline appends, then snapshot: the checkpoint covers nothing the
        offline store lacks."""
        started = time.perf_counter()
        self.appender.drain()
        s = self.s
        blob = ckpt.encode(
            ckpt.Checkpoint(
                source=s.source.name,
                topic=s.topic,
                fingerprints={v.name: v.fingerprint() for v in s.views},
                positions=dict(self.positions),
                max_event_by_partition=dict(self.watermark.max_by_partition),
                counts=dict(self.counts),
                snapshot=self.aggregator.snapshot(),
                written_ms=s.clock(),
                state_format=KEY_VERSION,
            )
        )
        seconds = time.perf_counter() - started
        self.stats.checkpoint_seconds += seconds
        s.metrics.checkpoint_seconds.observe(seconds)
        return (s.checkpoint_name, blob)

    def _flush(self, checkpoint: tuple[str, bytes] | None = None) -> dict[str, int]:
        """Write the states collected since the last flush (and the checkpoint); record the
        freshness of the events that just became visible."""
        s = self.s
        written, shown = self.writer.flush(checkpoint)
        visible = s.clock()
        self.last_flush = time.monotonic()
        self.stats.keys_written += sum(written.values())
        self.stats.deltas_written = self.writer.deltas_written
        self.stats.state_bytes = self.writer.bytes_written
        for name, count in written.items():
            s.metrics.keys_written.labels(name).inc(count)
        s.metrics.observe_freshness(self.freshness.observe(visible, shown) / 1000)
        return written

    def _checkpoint_alone(self, consumer: LogConsumer) -> None:
        checkpoint = self._take_checkpoint()
        self._flush(checkpoint)
        consumer.commit()
        self._checkpointed(checkpoint[1])

    def _checkpointed(self, blob: bytes) -> None:
        self.since_checkpoint = 0
        self.last_checkpoint = time.monotonic()
        self.stats.checkpoints += 1
        self.stats.checkpoint_bytes = len(blob)
        self.s.metrics.checkpoints.inc()
        self.s.metrics.checkpoint_bytes.set(len(blob))
        log_event(self.s.logger, "checkpoint", bytes=len(blob), positions=self.positions)
