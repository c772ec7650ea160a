"""``rtml backfill`` and ``rtml materialize``: the online state rebuilt from the offline store.

Both run the same steps (``materialize`` is ``backfill`` of every view):

1. **Catch up.** Read the valid topic (a throw-away consumer group) past the positions of
   the engine's checkpoint (all of it when there is none), append those events to the
   offline store (idempotent by ``event_id``) and apply them to the views that are kept
   (restored from the checkpoint). Afterwards the offline store holds every valid event up
   to the topic's end ``E``, and the kept views' state reflects exactly the events up to ``E``.
2. **Rebuild.** For each view rebuilt, a fresh runtime is fed the offline store's events
   in time order -- from the oldest one any read at the final coverage can use (earlier
   events cannot change a covered read), in chunks.
3. **Write.** The rebuilt views' fingerprints, then every key's state blob (the keys of
   the rebuilt state and those of the old state, so no blob of the old definition is left),
   the kept views' keys touched in step 1, and last a fresh checkpoint at positions ``E``.

The engine then resumes after ``E``. Stop the engine first: on the embedded log this
holds the engine's consumer group while it runs, so a running engine makes it fail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from rtml.backends.event_log.base import EventLog
from rtml.backends.offline_store import OfflineStore
from rtml.backends.online_store import OnlineStore
from rtml.core.aggregation import Aggregator, EventBatch
from rtml.core.aggregation.state import KEY_VERSION, decode_many
from rtml.core.pit import TS_MS, EventTable
from rtml.errors import InvalidInputError
from rtml.offline import event_tables, offline_store
from rtml.project import VALID_EVENTS, Project
from rtml.services.engine import checkpoint as ckpt
from rtml.services.engine.decode import BatchDecoder
from rtml.services.engine.scope import build_aggregator, engine_source, engine_views, wall_ms
from rtml.services.engine.stats import Watermark
from rtml.services.engine.stores import OnlineWriter, open_online, touched_keys
from rtml.services.logging import log_event, service_logger
from rtml.services.validator.kafka_support import ConsumerProbe
from rtml.services.validator.reading import read_topic

LOGGER = "rtml.engine.backfill"
CHUNK_ROWS = 200_000  # offline events read (and applied) at a time, roughly
WRITE_KEYS = 10_000  # state blobs per online write

Report = Callable[[str, dict[str, Any]], None]


@dataclass
class BackfillStats:
    mode: str
    rebuilt: list[str]
    kept: list[str]
    caught_up: int = 0  # valid records past the old checkpoint (applied to the kept views)
    appended: int = 0  # of those, new to the offline store
    events_read: int = 0  # offline events fed to the rebuilt views
    keys_written: dict[str, int] = field(default_factory=dict)
    positions: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "rebuilt": self.rebuilt,
            "kept": self.kept,
            "caught_up": self.caught_up,
            "appended": self.appended,
            "events_read": self.events_read,
            "keys_written": self.keys_written,
            "positions": self.positions,
            "seconds": round(self.seconds, 3),
        }


class _Keys(msgspec.Struct):
    keys: list[Any]


def materialize(project: Project, **kwargs: Any) -> BackfillStats:
    """Fill the online store from the offline store (cold start): every view rebuilt."""
    return backfill(project, None, mode="materialize", **kwargs)


def backfill(
    project: Project,
    views: Sequence[str] | None = None,
    *,
    mode: str = "backfill",
    log: EventLog | None = None,
    online: OnlineStore | None = None,
    offline: OfflineStore | None = None,
    logger: logging.Logger | None = None,
) -> BackfillStats:
    """Rebuild the online state of ``views`` (default: all) from the offline store, and
    write a fresh engine checkpoint. ``log``/``online``/``offline`` default to the
    configured ones (opened and closed here)."""
    started = time.monotonic()
    settings = project.config.engine
    logger = logger or service_logger(LOGGER)
    source = engine_source(project, settings)
    every = engine_views(project, source)
    known = {v.name for v in every}
    unknown = sorted(set(views or ()) - known)
    if unknown:
        raise InvalidInputError(
            f"no online feature view {', '.join(map(repr, unknown))} of source {source.name!r}. "
            f"Fix: use one of {', '.join(sorted(known)) or '(none)'}"
        )
    own_log, own_online, own_offline = log is None, online is None, offline is None
    the_log = project.event_log() if log is None else log
    try:
        the_online = open_online(project) if online is None else online
        try:
            the_offline = offline_store(project) if offline is None else offline
            try:
                job = _Job(project, the_log, the_online, the_offline, logger)
                stats = job.run(every, set(views) if views else known, mode)
            finally:
                if own_offline:
                    the_offline.close()
        finally:
            if own_online:
                the_online.close()
    finally:
        if own_log:
            the_log.close()
    stats.seconds = time.monotonic() - started
    log_event(logger, f"{mode}_done", **stats.as_dict())
    return stats


class _Job:
    def __init__(
        self,
        project: Project,
        log: EventLog,
        online: OnlineStore,
        offline: OfflineStore,
        logger: logging.Logger,
    ) -> None:
        self.project, self.log, self.online, self.offline, self.logger = project, log, online, offline, logger
        self.settings = project.config.engine
        self.source = engine_source(project, self.settings)
        self.table: EventTable = event_tables(project)[self.source.name]
        self.topic = project.topic(VALID_EVENTS)
        self.name = ckpt.checkpoint_name(self.settings.group)

    def run(self, every: list[Any], wanted: set[str], mode: str) -> BackfillStats:
        old = ckpt.load(self.online, self.name)
        if old is not None and (old.topic != self.topic or old.source != self.source.name):
            old = None  # another stream's checkpoint: nothing of it can be kept
        kept = [v for v in every if v.name not in wanted]
        if old is not None and old.state_format != KEY_VERSION:
            kept = []  # its key states are of an older format: rebuild every view
        if kept and (old is None or ckpt.stale_views(old, kept)):
            stale = sorted(ckpt.stale_views(old, kept)) if old is not None else [v.name for v in kept]
            log_event(self.logger, "rebuilding_all", reason="no usable state to keep", views=stale)
            kept = []
        kept_names = {v.name for v in kept}
        rebuilt = [v for v in every if v.name not in kept_names]
        stats = BackfillStats(mode=mode, rebuilt=[v.name for v in rebuilt], kept=[v.name for v in kept])
        guard = self.log.consumer([self.topic], self.settings.group)  # the embedded log: no engine running
        try:
            if ConsumerProbe(guard).is_kafka:
                guard.close()  # on Kafka it would only join the group: stop the engine yourself
            kept_agg = build_aggregator(kept, self.settings)
            if old is not None and kept:
                kept_agg.restore(old.snapshot)
            positions = dict(old.positions) if old is not None else {}
            watermark = Watermark(0, old.max_event_by_partition if old is not None else None)
            touched = self._catch_up(kept_agg, every, positions, watermark, stats)
            stats.positions = positions
            rebuilt_agg = build_aggregator(rebuilt, self.settings)
            self._rebuild(rebuilt_agg, stats)
            everything = Aggregator([*kept_agg.views.values(), *rebuilt_agg.views.values()])
            writer = OnlineWriter(self.online, everything)
            for view in rebuilt:
                self.online.set_fingerprint(view.name, view.fingerprint())
            for name, rt in rebuilt_agg.views.items():
                keys = list(dict.fromkeys([*rt.keys(), *self._old_keys(old, name, len(rt.join_keys))]))
                stats.keys_written[name] = self._write_all(writer, name, keys)
            for name, seen in touched.items():
                stats.keys_written[name] = self._write_all(writer, name, list(seen))
            counts = dict(old.counts) if old is not None else {}
            counts["applied"] = counts.get("applied", 0) + stats.caught_up
            checkpoint = ckpt.Checkpoint(
                state_format=KEY_VERSION,
                source=self.source.name,
                topic=self.topic,
                fingerprints={v.name: v.fingerprint() for v in every},
                positions=positions,
                max_event_by_partition=watermark.max_by_partition,
                counts=counts,
                snapshot=everything.snapshot(),
                written_ms=wall_ms(),
                built_by=mode,
            )
            writer.write({}, (self.name, ckpt.encode(checkpoint)))
        finally:
            guard.close()
        return stats

    # -- 1. catch up ----------------------------------------------------------------------

    def _catch_up(
        self,
        kept: Aggregator,
        every: list[Any],
        positions: dict[int, int],
        watermark: Watermark,
        stats: BackfillStats,
    ) -> dict[str, set[Any]]:
        decoder = BatchDecoder(self.source, every)
        touched: dict[str, set[Any]] = {name: set() for name in kept.views}
        start = dict(positions)
        for records in read_topic(self.log, self.topic, purpose="backfill"):
            for record in records:
                if record.offset > positions.get(record.partition, -1):
                    positions[record.partition] = record.offset
            fresh = [r for r in records if r.offset > start.get(r.partition, -1)]
            if not fresh:
                continue
            decoded = decoder.decode(fresh)
            stats.appended += self.offline.append(self.table, decoded.events)
            stats.caught_up += len(fresh)
            watermark.observe(decoded.ts_ms, decoded.partitions)
            for name, keys in touched_keys(kept, decoded.batch, kept.apply(decoded.batch)).items():
                touched[name].update(keys)
        log_event(
            self.logger, "caught_up", records=stats.caught_up, appended=stats.appended, positions=positions
        )
        return touched

    # -- 2. rebuild -----------------------------------------------------------------------

    def _rebuild(self, rebuilt: Aggregator, stats: BackfillStats) -> None:
        found = self.offline.stats(self.table)
        if not rebuilt.views or not found.rows or found.first_ts_ms is None or found.last_ts_ms is None:
            return
        first, last = found.first_ts_ms, found.last_ts_ms
        # nothing older than this can reach a read the rebuilt state covers
        start = max(
            first, min(rt.plan.retained_from(rt.plan.covered_from(last)) for rt in rebuilt.views.values())
        )
        chunk_ms = max(3_600_000, (last - first + 1) * CHUNK_ROWS // max(found.rows, 1))
        columns = BatchDecoder(self.source, [rt.view for rt in rebuilt.views.values()]).columns
        at = start
        while at <= last:
            table = self.offline.read(self.table, start_ms=at, end_ms=at + chunk_ms)
            if table.num_rows:
                rebuilt.apply(_batch(table, columns))
                stats.events_read += table.num_rows
            at += chunk_ms
        log_event(self.logger, "rebuilt", views=list(rebuilt.views), events=stats.events_read, from_ms=start)

    # -- 3. write -------------------------------------------------------------------------

    def _write_all(self, writer: OnlineWriter, view: str, keys: list[Any]) -> int:
        for i in range(0, len(keys), WRITE_KEYS):
            writer.write({view: keys[i : i + WRITE_KEYS]})
        return len(keys)

    @staticmethod
    def _old_keys(old: ckpt.Checkpoint | None, view: str, arity: int) -> list[Any]:
        """The keys the old state of ``view`` knew (their blobs are replaced too)."""
        if old is None or not old.snapshot:
            return []
        part = decode_many(old.snapshot).get(view)
        if part is None:
            return []
        keys = msgspec.msgpack.decode(part, type=_Keys).keys
        if arity == 1:
            return [k for k in keys if not isinstance(k, list)]
        return [tuple(k) for k in keys if isinstance(k, list) and len(k) == arity]


def _batch(table: pa.Table, columns: Sequence[str]) -> EventBatch:
    """An offline events table (ordered by time) as an EventBatch of ``columns``."""
    names = set(table.column_names)
    data: dict[str, Any] = {}
    for name in columns:
        if name not in names:
            continue
        col = table.column(name)
        typed = (
            pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)
        )
        data[name] = col.to_numpy() if typed and col.null_count == 0 else col.to_pylist()
    ts = np.asarray(table.column(TS_MS).to_numpy(), dtype=np.int64)
    return EventBatch.from_columns(ts, table.column("event_id").to_pylist(), data)


__all__ = ["BackfillStats", "backfill", "materialize"]
