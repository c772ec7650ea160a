"""What one engine run did: counts, rates, the watermark and feature freshness."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_SAMPLES = 2_000_000  # freshness samples kept for the percentiles (the oldest go first)


class Freshness:
    """Event time -> readable online, in ms, for live events only.

    An event counts as live when its event time is within ``horizon_ms`` of the wall
    clock at the moment its view states became visible; replayed history (old event
    times) says nothing about freshness and is left out.
    """

    def __init__(self, horizon_ms: int) -> None:
        self.horizon_ms = horizon_ms
        self._chunks: list[np.ndarray] = []
        self._kept = 0
        self.count = 0

    def observe(self, visible_ms: int, ts_ms: np.ndarray) -> np.ndarray:
        """Record the events of a batch that became visible at ``visible_ms``; returns the
        live ones' freshness (ms)."""
        lag = visible_ms - ts_ms
        live = lag[(lag >= -self.horizon_ms) & (lag <= self.horizon_ms)]
        if len(live):
            self._chunks.append(live)
            self._kept += len(live)
            self.count += len(live)
            while self._kept > MAX_SAMPLES and len(self._chunks) > 1:
                self._kept -= len(self._chunks.pop(0))
        return live

    def percentile(self, q: float) -> float | None:
        if not self._chunks:
            return None
        return float(np.percentile(np.concatenate(self._chunks), q))


class Watermark:
    """Lateness, judged event by event in log order, per partition of the valid topic.

    In each partition the watermark is the largest event time seen there minus the
    source's ``allowed_lateness``; an event whose time is before its partition's watermark
    when it arrives is *late*. The engine still applies it (see docs/engine.md); it is
    counted. Per partition, because partitions are read interleaved: one partition read
    ahead must not make the others' events late. With one partition this is exactly
    "max event time seen - allowed lateness". :attr:`watermark_ms` reports the lowest
    partition's.
    """

    def __init__(self, allowed_lateness_ms: int, max_by_partition: dict[int, int] | None = None) -> None:
        self.allowed_lateness_ms = allowed_lateness_ms
        self.max_by_partition: dict[int, int] = dict(max_by_partition or {})

    @property
    def max_event_ms(self) -> int | None:
        return max(self.max_by_partition.values(), default=None)

    @property
    def watermark_ms(self) -> int | None:
        low = min(self.max_by_partition.values(), default=None)
        return None if low is None else low - self.allowed_lateness_ms

    def observe(self, ts_ms: np.ndarray, partitions: np.ndarray | None = None) -> int:
        """Advance over a batch (in log order); return how many of its events were late."""
        if partitions is None or not len(partitions):
            return self._observe(0, ts_ms)
        first = int(partitions[0])
        if (partitions == first).all():
            return self._observe(first, ts_ms)
        return sum(self._observe(int(p), ts_ms[partitions == p]) for p in np.unique(partitions))

    def _observe(self, partition: int, ts_ms: np.ndarray) -> int:
        if not len(ts_ms):
            return 0
        known = self.max_by_partition.get(partition)
        running = np.maximum.accumulate(ts_ms)
        before = np.empty_like(running)
        start = np.iinfo(np.int64).min if known is None else known
        before[0] = start
        np.maximum(running[:-1], start, out=before[1:])
        late = int(np.count_nonzero(ts_ms + self.allowed_lateness_ms < before))
        top = int(running[-1])
        self.max_by_partition[partition] = top if known is None else max(known, top)
        return late


@dataclass
class EngineStats:
    """What one :meth:`EngineService.run` did."""

    events: int = 0  # valid events applied (each once, replays after a restart excluded)
    skipped: int = 0  # records at or before the checkpoint, read again after a restart
    late: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # per view: too old for the online state
    offline_new: int = 0  # rows the offline store did not hold yet
    keys_written: int = 0
    deltas_written: int = 0  # of keys_written: appended deltas (the rest: full states)
    state_bytes: int = 0  # bytes of full states and deltas written online
    batches: int = 0
    checkpoints: int = 0
    checkpoint_seconds: float = 0.0
    checkpoint_bytes: int = 0
    restored: bool = False
    restored_positions: dict[int, int] = field(default_factory=dict)
    watermark_ms: int | None = None
    views: int = 0
    busy_seconds: float = 0.0  # decoding, applying, writing and checkpointing
    active_seconds: float = 0.0  # from the first batch to the end of the last: busy + log reads
    seconds: float = 0.0  # the whole run, start-up and idle polls included
    stopped_by: str = ""  # "idle", "stop" or "error"
    freshness: Freshness | None = field(default=None, repr=False)

    @property
    def events_per_s(self) -> float:
        return self.events / self.busy_seconds if self.busy_seconds > 0 else 0.0

    @property
    def freshness_p50_ms(self) -> float | None:
        return None if self.freshness is None else self.freshness.percentile(50)

    @property
    def freshness_p99_ms(self) -> float | None:
        return None if self.freshness is None else self.freshness.percentile(99)

    def as_dict(self) -> dict[str, Any]:
        p50, p99 = self.freshness_p50_ms, self.freshness_p99_ms
        return {
            "events": self.events,
            "skipped": self.skipped,
            "late": self.late,
            "dropped": dict(self.dropped),
            "offline_new": self.offline_new,
            "keys_written": self.keys_written,
            "deltas_written": self.deltas_written,
            "state_bytes": self.state_bytes,
            "batches": self.batches,
            "checkpoints": self.checkpoints,
            "checkpoint_seconds": round(self.checkpoint_seconds, 3),
            "checkpoint_bytes": self.checkpoint_bytes,
            "restored": self.restored,
            "watermark_ms": self.watermark_ms,
            "views": self.views,
            "busy_seconds": round(self.busy_seconds, 3),
            "active_seconds": round(self.active_seconds, 3),
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.events_per_s),
            "freshness_samples": 0 if self.freshness is None else self.freshness.count,
            "freshness_p50_ms": None if p50 is None else round(p50, 2),
            "freshness_p99_ms": None if p99 is None else round(p99, 2),
            "stopped_by": self.stopped_by,
        }
