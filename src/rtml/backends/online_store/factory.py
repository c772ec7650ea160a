"""Opening the configured online store of a project."""

from __future__ import annotations

from pathlib import Path

from rtml.backends.online_store.base import OnlineStore
from rtml.backends.online_store.config import OnlineStoreConfig, for_project
from rtml.backends.registry import open_backend


def open_online_store(config: OnlineStoreConfig, *, project: str, data_dir: Path) -> OnlineStore:
    """Open the configured online store (the caller closes it): a SQLite store with no
    ``path`` lives in ``<data_dir>/online.db``, Redis keys start with ``rtml:<project>``."""
    store: OnlineStore = open_backend("online_store", for_project(config, project=project, data_dir=data_dir))
    return store
