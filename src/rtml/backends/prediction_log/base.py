"""The prediction log port: append batches of served predictions, read them back.

A row holds ``request_id``, ``model``, ``version``, ``ts`` (when it was served, UTC),
``keys`` (the join keys), ``request`` (the request fields), ``features`` (every model input
by name, as served: defaults included), ``missing`` (the views whose state was not found)
and ``score``. ``keys``, ``request``, ``features`` and ``missing`` are JSON text (JSONB on
PostgreSQL), so one table holds every model whatever its features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import pyarrow as pa

PREDICTION_COLUMNS = (
    "request_id",
    "model",
    "version",
    "ts",
    "keys",
    "request",
    "features",
    "missing",
    "score",
)

# What read() returns, on every backend.
ARROW_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("model", pa.string()),
        ("version", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("keys", pa.string()),
        ("request", pa.string()),
        ("features", pa.string()),
        ("missing", pa.string()),
        ("score", pa.float64()),
    ]
)


@dataclass(frozen=True)
class PredictionRecord:
    """One served prediction (one row of a request)."""

    request_id: str
    model: str
    version: str
    ts_ms: int
    keys: Mapping[str, Any]
    request: Mapping[str, Any]
    features: Mapping[str, Any]
    missing: Sequence[str]
    score: float


class PredictionLog(Protocol):
    def write(self, records: Sequence[PredictionRecord]) -> None:
        """Append ``records`` durably (all of them, or raise)."""
        ...

    def read(self, model: str | None = None) -> pa.Table:
        """Every logged prediction (of ``model``), as :data:`ARROW_SCHEMA`, oldest first."""
        ...

    def close(self) -> None: ...


def _other(value: Any) -> Any:
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    return str(value)


# Compact JSON; floats JSON cannot carry (NaN, infinity) are written as null.
_ENCODE = msgspec.json.Encoder(enc_hook=_other)


def to_json(value: Any) -> str:
    """Compact JSON; floats JSON cannot carry (NaN, infinity) become ``null``."""
    return _ENCODE.encode(value).decode()


def to_arrow(records: Sequence[PredictionRecord]) -> pa.Table:
    """``records`` as a table of :data:`ARROW_SCHEMA`."""
    return pa.table(
        {
            "request_id": [r.request_id for r in records],
            "model": [r.model for r in records],
            "version": [r.version for r in records],
            "ts": pa.array([r.ts_ms for r in records], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "keys": [to_json(r.keys) for r in records],
            "request": [to_json(r.request) for r in records],
            "features": [to_json(r.features) for r in records],
            "missing": [to_json(list(r.missing)) for r in records],
            "score": pa.array([_score(r.score) for r in records], pa.float64()),
        },
        schema=ARROW_SCHEMA,
    )


def _score(value: float) -> float | None:
    return value if math.isfinite(value) else None
