"""Prometheus metrics of the validator, in a registry of its own.

Each :class:`ValidatorMetrics` has its own ``CollectorRegistry`` (so several services in
one process, e.g. in tests, do not collide); :meth:`ValidatorMetrics.serve` exposes it
on ``http://127.0.0.1:PORT/metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

OUTCOMES = ("valid", "invalid", "duplicate")
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ValidatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "rtml_validator_events", "Raw events handed over, by outcome.", ["outcome"], registry=r
        )
        self.invalid = Counter(
            "rtml_validator_invalid_events", "Invalid raw events, by error code.", ["code"], registry=r
        )
        self.batch_seconds = Histogram(
            "rtml_validator_batch_seconds",
            "Time to validate, route and hand over one polled batch.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "rtml_validator_consumer_lag",
            "Raw records not yet read by this copy (Kafka; 0 on the embedded logs).",
            registry=r,
        )
        self.invalid_rate = Gauge(
            "rtml_validator_invalid_rate", "Invalid share of the events in the alert window.", registry=r
        )
        self.alerts = Counter(
            "rtml_validator_alerts", "Invalid-rate alerts raised (transitions to firing).", registry=r
        )
        self.alert_firing = Gauge(
            "rtml_validator_alert_firing", "1 while the invalid-rate alert is firing.", registry=r
        )
        self.dedupe_ids = Gauge("rtml_validator_dedupe_ids", "Event ids the deduper remembers.", registry=r)
        self.rebuild_seconds = Gauge(
            "rtml_validator_dedupe_rebuild_seconds",
            "Duration of the last dedupe rebuild from the valid topic.",
            registry=r,
        )
        for outcome in OUTCOMES:
            self.events.labels(outcome)  # export zeros from the start

    def record_batch(
        self, *, valid: int, invalid: int, duplicates: int, by_code: Mapping[str, int], seconds: float
    ) -> None:
        self.events.labels("valid").inc(valid)
        self.events.labels("invalid").inc(invalid)
        self.events.labels("duplicate").inc(duplicates)
        for code, n in by_code.items():
            self.invalid.labels(code).inc(n)
        self.batch_seconds.observe(seconds)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` on ``addr:port`` (a daemon thread)."""
        start_http_server(port, addr=addr, registry=self.registry)
