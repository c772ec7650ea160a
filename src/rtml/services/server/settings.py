"""Settings of rtml's HTTP server (``server`` in ``rtml.yaml``); no server imports here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rtml.backends.prediction_log.config import PredictionLogConfig

MIB = 1 << 20


class IngestSettings(BaseModel):
    """``server.ingest``: limits of ``POST /events``. See docs/ingestion.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A larger body is refused with 413 (checked on Content-Length and while reading).
    max_body_bytes: int = Field(default=5 * MIB, ge=1024)
    # A body holding more events is refused with 413.
    max_events: int = Field(default=100_000, ge=1)
    # How long to wait for the event log to confirm the events before answering 503.
    flush_timeout_s: float = Field(default=10.0, gt=0)
    # The Retry-After of a 503 (event log down), and how long the server waits before
    # trying to reach a log it could not open again.
    retry_after_s: int = Field(default=5, ge=1)


class PredictionLogSettings(BaseModel):
    """``server.predict.log``: every prediction goes, in batches and off the request path,
    to the prediction log. A full queue drops predictions (counted in
    ``rtml_prediction_log_dropped``) rather than slow requests down. See docs/serving.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # Rows per write; a batch is written when it is full or flush_interval_s after its first row.
    batch_size: int = Field(default=2000, ge=1)
    flush_interval_s: float = Field(default=2.0, gt=0)
    # Predictions waiting to be written; more are dropped (and counted).
    queue_size: int = Field(default=100_000, ge=1)
    # None: follow the offline store (Parquet files beside DuckDB, a table in PostgreSQL).
    backend: PredictionLogConfig | None = None


class PredictSettings(BaseModel):
    """``server.predict``: ``POST /predict/{model}``. See docs/serving.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # How often the server asks the registry where the champion alias points.
    poll_interval_s: float = Field(default=2.0, ge=0.05)
    # Versions kept loaded per model (the current one included): a rollback to one of them
    # is a pointer swap, with no download.
    keep_versions: int = Field(default=3, ge=1)
    # Prediction requests running at once; one more is answered 503 with Retry-After.
    max_in_flight: int = Field(default=32, ge=1)
    retry_after_s: int = Field(default=1, ge=1)
    # Score single rows on the event loop instead of handing them to a worker thread: about
    # a quarter less CPU per request and 40% more saturation throughput (docs/benchmarks.md).
    # An inline call slower than inline_slow_ms, or one the online store fails, sends single
    # rows to the worker threads for inline_pause_s, where max_in_flight bounds a stuck
    # store with 503s: a stuck store stalls the event loop once per pause, for at most
    # online_store.timeout_s. False: always the worker threads (batches always are).
    inline_single_rows: bool = True
    inline_slow_ms: float = Field(default=50.0, gt=0)
    inline_pause_s: float = Field(default=30.0, gt=0)
    # Rows of one POST /predict/{model}/batch, and its body size; more: 413.
    max_batch_rows: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=5 * MIB, ge=1024)
    # Online store down: False answers 503; True scores with the documented defaults of every
    # view and says so in the reply (`store_down: true`).
    features_default_on_store_down: bool = False
    # XGBoost threads per prediction call (requests already run in parallel).
    predict_threads: int = Field(default=1, ge=1)
    log: PredictionLogSettings = Field(default_factory=PredictionLogSettings)


class ServerSettings(BaseModel):
    """``server``: where ``rtml serve`` listens, and each endpoint's settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # One `http_request` JSON line per request: "all", "errors" (status >= 400 only) or "off".
    # The Prometheus counters and latency histogram count every request either way; every
    # prediction is in the prediction log, and the NGINX gateway keeps its own access log.
    access_log: Literal["all", "errors", "off"] = "all"
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    predict: PredictSettings = Field(default_factory=PredictSettings)
