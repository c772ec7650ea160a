"""The schema store role: where rtml's Confluent-compatible registry keeps schemas."""

from __future__ import annotations

from pathlib import Path

from rtml.backends.registry import open_backend
from rtml.backends.schema_store.base import (
    SchemaStore,
    SchemaStoreError,
    StoredSchema,
    SubjectVersion,
    VersionExistsError,
)
from rtml.backends.schema_store.config import (
    EmbeddedSchemaRegistryConfig,
    ExternalSchemaRegistryConfig,
    PostgresSchemaRegistryConfig,
    SchemaRegistryConfig,
)
from rtml.errors import ConfigError


def open_schema_store(config: SchemaRegistryConfig, *, base_dir: Path | None = None) -> SchemaStore:
    """Open the store of the configured registry (the caller closes it).

    A relative embedded ``path`` is resolved against ``base_dir`` (the project
    directory) when given. An ``external`` registry has no store of rtml's.
    """
    if isinstance(config, ExternalSchemaRegistryConfig):
        raise ConfigError(
            f"schema_registry.type is 'external' ({config.url}): that registry keeps the schemas "
            "and rtml runs none. Fix: point clients at its URL, or set schema_registry.type "
            "to 'embedded' or 'postgres' to run rtml's registry"
        )
    if isinstance(config, EmbeddedSchemaRegistryConfig) and base_dir is not None:
        if str(config.path) != ":memory:" and not config.path.is_absolute():
            config = config.model_copy(update={"path": base_dir / config.path})
    store: SchemaStore = open_backend("schema_registry", config)
    return store


__all__ = [
    "EmbeddedSchemaRegistryConfig",
    "ExternalSchemaRegistryConfig",
    "PostgresSchemaRegistryConfig",
    "SchemaRegistryConfig",
    "SchemaStore",
    "SchemaStoreError",
    "StoredSchema",
    "SubjectVersion",
    "VersionExistsError",
    "open_schema_store",
]
