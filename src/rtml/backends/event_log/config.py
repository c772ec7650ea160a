"""Typed configs of the event log backends (no driver imports here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemoryEventLogConfig(_Strict):
    """In-process, non-durable log for tests (``rtml.testing``)."""

    type: Literal["memory"] = "memory"
    partitions: int = Field(default=1, ge=1)


class LocalEventLogConfig(_Strict):
    """The embedded durable log: one SQLite (WAL) file, shared by processes on one machine."""

    type: Literal["local"] = "local"
    path: Path = Path(".rtml/log.db")
    partitions: int = Field(default=1, ge=1)


class KafkaEventLogConfig(_Strict):
    """Apache Kafka through confluent-kafka."""

    type: Literal["kafka"] = "kafka"
    bootstrap_servers: str = "127.0.0.1:9092"
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # Extra librdkafka settings (e.g. security.protocol), passed through unchanged.
    client: dict[str, str] = Field(default_factory=dict)
    # Settings of the topics rtml creates. Records carry their event time as timestamp, so
    # time-based retention would delete replayed history (2019 events) at once: keep by
    # default, bounded by size on the broker. Set e.g. {"retention.ms": "604800000"} to expire.
    topic_config: dict[str, str] = Field(default_factory=lambda: {"retention.ms": "-1"})


EventLogConfig = Annotated[
    MemoryEventLogConfig | LocalEventLogConfig | KafkaEventLogConfig,
    Field(discriminator="type"),
]
