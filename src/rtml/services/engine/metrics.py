"""Prometheus metrics of the engine, in a registry of its own (see the validator's).

:meth:`EngineMetrics.serve` exposes them on ``http://127.0.0.1:PORT/metrics``.
"""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FRESHNESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter("rtml_engine_events", "Valid events applied to the feature state.", registry=r)
        self.late = Counter(
            "rtml_engine_late_events",
            "Events behind the watermark (max event time - allowed lateness) when they arrived.",
            registry=r,
        )
        self.dropped = Counter(
            "rtml_engine_dropped_events",
            "Events too old for a view's online state (before its retention); kept offline.",
            ["view"],
            registry=r,
        )
        self.skipped = Counter(
            "rtml_engine_skipped_records",
            "Records read again after a restart and skipped (already in the checkpoint).",
            registry=r,
        )
        self.offline = Counter(
            "rtml_engine_offline_events", "Events appended to the offline store (new rows).", registry=r
        )
        self.keys_written = Counter(
            "rtml_engine_states_written",
            "Per-key state blobs written to the online store.",
            ["view"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "rtml_engine_batch_seconds",
            "Time to decode, apply and write one polled batch (checkpoint included).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.freshness = Histogram(
            "rtml_engine_freshness_seconds",
            "Event time -> state readable online, for live events (event time near the wall clock).",
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )
        self.checkpoints = Counter("rtml_engine_checkpoints", "Checkpoints written.", registry=r)
        self.checkpoint_seconds = Histogram(
            "rtml_engine_checkpoint_seconds",
            "Time to drain the offline appends and snapshot the state for one checkpoint.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.checkpoint_bytes = Gauge(
            "rtml_engine_checkpoint_bytes", "Size of the last checkpoint.", registry=r
        )
        self.watermark = Gauge(
            "rtml_engine_watermark_seconds", "The watermark, as a Unix time in seconds.", registry=r
        )
        self.lag = Gauge(
            "rtml_engine_consumer_lag",
            "Valid records not yet read by the engine (Kafka; 0 on the embedded logs).",
            registry=r,
        )

    def observe_freshness(self, seconds: np.ndarray) -> None:
        """``freshness.observe`` of many values: one bucket count per bucket, not a Python
        call per event (prometheus-client's own ``observe`` costs ~7 us a value)."""
        observe_many(self.freshness, seconds)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` on ``addr:port`` (a daemon thread)."""
        start_http_server(port, addr=addr, registry=self.registry)


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for each of ``values``, counted per bucket at once (through
    prometheus-client's bucket values; value by value if its internals are not as expected)."""
    if not len(values):
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values.tolist():
            histogram.observe(value)
        return
    at = np.searchsorted(np.asarray(bounds, dtype=np.float64), values, side="left")
    counts = np.bincount(at, minlength=len(bounds))
    total.inc(float(values.sum()))
    for i, count in enumerate(counts[: len(bounds)].tolist()):
        if count:
            buckets[i].inc(count)
