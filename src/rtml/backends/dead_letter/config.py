"""Typed configs of the dead-letter sinks (no driver imports here).

Names that depend on the project (the table file under ``data_dir``, the topic
``<project>.events.invalid``, the index prefix ``<project>-dead-letters``) are left
``None`` in ``rtml.yaml`` and filled by :func:`for_project`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_PROJECT = "rtml"
TABLE_FILE = "dead_letters.db"
# What OpenSearch and Elasticsearch accept in an index name, lower-case only.
_INDEX_PREFIX = re.compile(r"^[a-z0-9][a-z0-9._\-]{0,200}$")


def invalid_topic(project: str) -> str:
    """The Kafka topic of a project's invalid events."""
    return f"{project}.events.invalid"


def index_prefix(project: str) -> str:
    """The prefix of a project's daily dead-letter indices."""
    return f"{project}-dead-letters"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemoryDeadLetterConfig(_Strict):
    """In-process, non-durable sink for tests (``rtml.testing``)."""

    type: Literal["memory"] = "memory"


class TableDeadLetterConfig(_Strict):
    """The embedded dead-letter table: one SQLite (WAL) file, shared by processes."""

    type: Literal["table"] = "table"
    # None: <data_dir>/dead_letters.db
    path: Path | None = None


class KafkaDeadLetterConfig(_Strict):
    """The Kafka topic ``<project>.events.invalid`` (original bytes + error headers)."""

    type: Literal["kafka"] = "kafka"
    bootstrap_servers: str = "127.0.0.1:9092"
    # Extra librdkafka settings (e.g. security.protocol), passed through unchanged.
    client: dict[str, str] = Field(default_factory=dict)
    # None: <project>.events.invalid
    topic: str | None = None
    partitions: int = Field(default=1, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    topic_config: dict[str, str] = Field(default_factory=lambda: {"retention.ms": "-1"})
    # count()/counts_by_code()/recent() read the topic; give up (with an error) after this.
    read_timeout_s: float = Field(default=30.0, gt=0)
    # Also keep the letters searchable: `rtml run indexer` copies the topic into these
    # daily OpenSearch/Elasticsearch indices (idempotent: a letter indexed twice is one
    # document). See docs/dead-letters.md.
    index: OpenSearchDeadLetterConfig | None = None


class OpenSearchDeadLetterConfig(_Strict):
    """Daily indices ``<index_prefix>-YYYY.MM.DD`` on OpenSearch (1.x+) or Elasticsearch
    (7.8+), written with the ``_bulk`` API."""

    type: Literal["opensearch"] = "opensearch"
    url: str = "http://127.0.0.1:9200"
    # None: <project>-dead-letters
    index_prefix: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    verify_tls: bool = True
    timeout_s: float = Field(default=10.0, gt=0)
    # Letters per _bulk request.
    batch_size: int = Field(default=1000, ge=1)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {url!r}")
        return url.rstrip("/")

    @field_validator("index_prefix")
    @classmethod
    def _valid_prefix(cls, prefix: str | None) -> str | None:
        if prefix is not None and not _INDEX_PREFIX.match(prefix):
            raise ValueError(
                f"{prefix!r} is not a valid index name prefix: use lower-case letters, "
                "digits, '.', '_' and '-', starting with a letter or digit"
            )
        return prefix


KafkaDeadLetterConfig.model_rebuild()

DeadLetterConfig = Annotated[
    MemoryDeadLetterConfig | TableDeadLetterConfig | KafkaDeadLetterConfig | OpenSearchDeadLetterConfig,
    Field(discriminator="type"),
]


def for_project(config: DeadLetterConfig, *, project: str, data_dir: Path) -> DeadLetterConfig:
    """``config`` with the project's names filled in where it left them ``None``."""
    if isinstance(config, TableDeadLetterConfig) and config.path is None:
        return config.model_copy(update={"path": Path(data_dir) / TABLE_FILE})
    if isinstance(config, KafkaDeadLetterConfig):
        updates: dict[str, object] = {}
        if config.topic is None:
            updates["topic"] = invalid_topic(project)
        if config.index is not None and config.index.index_prefix is None:
            updates["index"] = config.index.model_copy(update={"index_prefix": index_prefix(project)})
        return config.model_copy(update=updates) if updates else config
    if isinstance(config, OpenSearchDeadLetterConfig) and config.index_prefix is None:
        return config.model_copy(update={"index_prefix": index_prefix(project)})
    return config
