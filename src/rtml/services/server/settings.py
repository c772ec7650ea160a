"""Settings of rtml's HTTP server (``server`` in ``rtml.yaml``); no server imports here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

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


class ServerSettings(BaseModel):
    """``server``: where ``rtml serve`` listens, and each endpoint's settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
