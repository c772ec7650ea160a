"""Typed configs of the schema registry's section, ``schema_registry`` (no driver imports).

``embedded`` and ``postgres`` run rtml's own registry service (``rtml run registry``)
on a store of that kind; ``external`` points clients at an existing Confluent or
Karapace registry, and rtml runs none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_PORT = 8081


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Served(_Strict):
    # Where `rtml run registry` listens, and so where clients find it.
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)

    @property
    def registry_url(self) -> str:
        return f"http://{self.host}:{self.port}"


class EmbeddedSchemaRegistryConfig(_Served):
    """rtml's registry on one SQLite file (``:memory:`` for tests)."""

    type: Literal["embedded"] = "embedded"
    path: Path = Path(".rtml/registry.db")
    busy_timeout_s: float = Field(default=5.0, gt=0)


class PostgresSchemaRegistryConfig(_Served):
    """rtml's registry on PostgreSQL (psycopg 3), in its own PostgreSQL schema."""

    type: Literal["postgres"] = "postgres"
    url: str = "postgresql://rtml:rtml@127.0.0.1:5432/rtml"
    # The PostgreSQL schema (namespace) holding the registry's tables.
    namespace: str = Field(default="rtml_registry", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    connect_timeout_s: int = Field(default=5, ge=1)
    statement_timeout_s: float = Field(default=10.0, gt=0)


class ExternalSchemaRegistryConfig(_Strict):
    """An existing Confluent Schema Registry or Karapace, by URL."""

    type: Literal["external"] = "external"
    url: str = f"http://127.0.0.1:{DEFAULT_PORT}"

    @property
    def registry_url(self) -> str:
        return self.url.rstrip("/")


SchemaRegistryConfig = Annotated[
    EmbeddedSchemaRegistryConfig | PostgresSchemaRegistryConfig | ExternalSchemaRegistryConfig,
    Field(discriminator="type"),
]
