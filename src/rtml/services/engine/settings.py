"""Settings of the feature engine (``engine`` in ``rtml.yaml``); no engine imports here,
so that :mod:`rtml.config` can import this module."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rtml.timeutil import parse_duration


def _duration(value: str) -> str:
    parse_duration(value)  # raises ValueError with the accepted forms
    return value


class EngineSettings(BaseModel):
    """``rtml run engine``: valid topic -> online state and offline events. See docs/engine.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The source whose events the valid topic carries; None: validator.source, or the only one.
    source: str | None = None
    group: str = Field(default="rtml-engine", min_length=1)
    # Records per poll, and so at most per batch (a batch is what the log has, up to this).
    batch_size: int = Field(default=20_000, ge=1, le=1_000_000)
    poll_timeout: str = "200ms"
    # --until-idle stops after this many empty polls in a row (and, on Kafka, no lag).
    idle_polls: int = Field(default=2, ge=1)
    # A checkpoint (state snapshot + log positions, atomic with a batch's blobs) is taken
    # when either is reached, and when the engine stops. The log offsets are committed
    # right after it; a restart replays at most this much.
    checkpoint_interval: str = "30s"
    checkpoint_events: int = Field(default=1_000_000, ge=1)
    # Caught up, the touched keys' states are written after every batch. Behind (a poll
    # returns a full batch), at most this often: a key touched in several batches is
    # written once (all are written before a checkpoint).
    state_interval: str = "1s"
    # Valid events are appended to the offline store in the background, this many at a
    # time (and all before each checkpoint): large appends are much cheaper.
    offline_batch: int = Field(default=50_000, ge=1)
    # How far before the newest event online reads stay exact (the head of single events
    # kept per key); reads at earlier times raise NotCoveredError.
    exact_for: str = "10m"
    # Freshness (event time -> readable online) is measured for events whose event time is
    # within this of the wall clock: live traffic, not replayed history.
    freshness_horizon: str = "5m"

    _durations = field_validator(
        "poll_timeout", "checkpoint_interval", "state_interval", "exact_for", "freshness_horizon"
    )(_duration)
