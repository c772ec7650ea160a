"""Typed configs of the online store backends (no driver imports here).

Names that depend on the project (the SQLite file under ``data_dir``, the Redis key
prefix ``rtml:<project>``) are left ``None`` in ``rtml.yaml`` and filled by
:func:`for_project`. See docs/online-store.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SQLITE_FILE = "online.db"
_PREFIX = re.compile(r"^[A-Za-z0-9_.\-:]{1,100}$")


def key_prefix(project: str) -> str:
    """The Redis key prefix of a project's online state: ``rtml:<project>``."""
    return f"rtml:{project}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemoryOnlineStoreConfig(_Strict):
    """In-process, non-durable store for tests. Stores opened with the same ``name`` in
    one process share their data (the engine and the server of a test); ``None``: private."""

    type: Literal["memory"] = "memory"
    name: str | None = None


class SqliteOnlineStoreConfig(_Strict):
    """The embedded store: one SQLite (WAL) file, ``<data_dir>/online.db`` by default,
    written by the engine and read by the server and the CLI at the same time."""

    type: Literal["sqlite"] = "sqlite"
    # None: <data_dir>/online.db
    path: Path | None = None
    # How long a call waits for another process's write lock before failing.
    busy_timeout_s: float = Field(default=10.0, gt=0)
    # normal: a write survives a killed process (not a power loss, which can only roll back
    # whole writes, checkpoint included); full: also a power loss, slower writes.
    synchronous: Literal["normal", "full"] = "normal"


class RedisOnlineStoreConfig(_Strict):
    """Redis (redis-py), one server or a primary (not Redis Cluster: a write is one MULTI)."""

    type: Literal["redis"] = "redis"
    url: str = "redis://127.0.0.1:6379/0"
    # None: rtml:<project>
    key_prefix: str | None = None
    connect_timeout_s: float = Field(default=1.0, gt=0)
    # Per command: a server that stops answering fails the call after this long.
    timeout_s: float = Field(default=2.0, gt=0)
    max_connections: int = Field(default=32, ge=1)

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: str) -> str:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"must start with redis://, rediss:// or unix://, got {url!r}")
        return url

    @field_validator("key_prefix")
    @classmethod
    def _valid_prefix(cls, prefix: str | None) -> str | None:
        if prefix is not None and not _PREFIX.match(prefix):
            raise ValueError(f"{prefix!r} is not a key prefix: use letters, digits and _ . - :")
        return prefix


OnlineStoreConfig = Annotated[
    MemoryOnlineStoreConfig | SqliteOnlineStoreConfig | RedisOnlineStoreConfig,
    Field(discriminator="type"),
]


def for_project(config: OnlineStoreConfig, *, project: str, data_dir: Path) -> OnlineStoreConfig:
    """``config`` with the project's names filled in where it left them ``None``."""
    if isinstance(config, SqliteOnlineStoreConfig) and config.path is None:
        return config.model_copy(update={"path": Path(data_dir) / SQLITE_FILE})
    if isinstance(config, RedisOnlineStoreConfig) and config.key_prefix is None:
        return config.model_copy(update={"key_prefix": key_prefix(project)})
    return config
