"""The demo's summary: the keys DESIGN.md promises, each filled by the stage that owns it.

A key stays ``None`` (``null`` in the JSON) until the stage that owns it exists and has
run; the summary never invents a number.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EventsSummary:
    produced: int | None = None
    valid: int | None = None
    invalid: int | None = None
    duplicates: int | None = None
    late: int | None = None


@dataclass
class FeaturesSummary:
    views: int | None = None
    freshness_p50_ms: float | None = None
    freshness_p99_ms: float | None = None
    events_per_s: float | None = None


@dataclass
class TrainingSummary:
    rows: int | None = None
    test_auc: float | None = None
    oracle_auc: float | None = None
    no_stream_features_auc: float | None = None
    model_version: str | None = None
    trials: int | None = None


@dataclass
class ServingSummary:
    requests: int | None = None
    errors: int | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None


@dataclass
class MonitoringSummary:
    online_auc: float | None = None
    max_psi: float | None = None
    alerts: int | None = None


@dataclass
class SkewSummary:
    """Training/serving skew of the live phase (not part of DESIGN's keys): of the labelled
    predictions, how many were served with features that differ from the offline
    point-in-time values of the same (key, time); and the oracle AUC of those same carts
    (the generator's planted probabilities), the best any model could do on them."""

    rows: int | None = None
    rows_differing: int | None = None
    online_oracle_auc: float | None = None


@dataclass
class DeadLettersSummary:
    """``rtml demo --scale`` only: dead letters in the Kafka topic and searchable in OpenSearch."""

    topic: int | None = None
    indexed: int | None = None


@dataclass
class DemoSummary:
    events: EventsSummary = field(default_factory=EventsSummary)
    features: FeaturesSummary = field(default_factory=FeaturesSummary)
    training: TrainingSummary = field(default_factory=TrainingSummary)
    serving: ServingSummary = field(default_factory=ServingSummary)
    monitoring: MonitoringSummary = field(default_factory=MonitoringSummary)
    skew: SkewSummary = field(default_factory=SkewSummary)
    dead_letters: DeadLettersSummary = field(default_factory=DeadLettersSummary)
    # The backend type of every role (event_log: kafka, ...), from the project's settings.
    backends: dict[str, str] = field(default_factory=dict)
    wall_seconds: float | None = None
    # Which stages ran, in order, with their wall time (not part of DESIGN's keys).
    stages: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def rows(self) -> list[tuple[str, str]]:
        """``(dotted key, value)`` for the summary table; pending keys show as '-'."""
        out: list[tuple[str, str]] = []
        for section, values in self.to_dict().items():
            if section == "stages":
                continue
            if isinstance(values, dict):
                for key, value in values.items():
                    out.append((f"{section}.{key}", _show(value)))
            else:
                out.append((section, _show(values)))
        return out


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
