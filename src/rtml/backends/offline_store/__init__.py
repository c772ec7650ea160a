"""The offline store role: every valid event, and point-in-time training sets over them."""

from __future__ import annotations

from pathlib import Path

from rtml.backends.offline_store.base import (
    OfflineStore,
    OfflineStoreError,
    Progress,
    SourceStats,
    StoredEvent,
)
from rtml.backends.offline_store.config import (
    DuckDbOfflineStoreConfig,
    OfflineStoreConfig,
    PostgresOfflineStoreConfig,
    for_project,
)
from rtml.backends.registry import open_backend


def open_offline_store(config: OfflineStoreConfig, *, data_dir: Path | None = None) -> OfflineStore:
    """Open the configured offline store (the caller closes it). A DuckDB store with no
    ``path`` lives in ``<data_dir>/offline.duckdb``."""
    if data_dir is not None:
        config = for_project(config, data_dir=data_dir)
    store: OfflineStore = open_backend("offline_store", config)
    return store


__all__ = [
    "DuckDbOfflineStoreConfig",
    "OfflineStore",
    "OfflineStoreConfig",
    "OfflineStoreError",
    "PostgresOfflineStoreConfig",
    "Progress",
    "SourceStats",
    "StoredEvent",
    "open_offline_store",
]
