"""Typed configs of the offline store backends (no driver imports here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rtml.timeutil import parse_duration

DUCKDB_FILE = "offline.duckdb"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DuckDbOfflineStoreConfig(_Strict):
    """The embedded warehouse: one DuckDB file, ``<data_dir>/offline.duckdb`` by default.

    DuckDB lets one process write a file at a time, so the store opens it only for the
    length of one call and closes it again; a call that finds the file held by another
    process retries until ``lock_timeout_s`` (see docs/offline-store.md).
    """

    type: Literal["duckdb"] = "duckdb"
    # None: <data_dir>/offline.duckdb
    path: Path | None = None
    lock_timeout_s: float = Field(default=60.0, ge=0)
    # An appended event is dropped if its event_id is stored with an event time at most
    # this far from the batch's times (the validator's dedupe horizon, by default). DuckDB's
    # primary-key index would be rewritten at every close, so the store checks ids by a
    # join over the batch's time range instead.
    dedupe_horizon: str = "24h"
    # DuckDB's own limits for a training-set build; None leaves DuckDB's defaults.
    threads: int | None = Field(default=None, ge=1)
    memory_limit: str | None = None

    @field_validator("dedupe_horizon")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)  # raises ValueError with the accepted forms
        return value


class PostgresOfflineStoreConfig(_Strict):
    """PostgreSQL (psycopg 3), in its own PostgreSQL schema."""

    type: Literal["postgres"] = "postgres"
    url: str = "postgresql://rtml:rtml@127.0.0.1:5432/rtml"
    # The PostgreSQL schema (namespace) holding the events tables.
    namespace: str = Field(default="rtml_offline", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    connect_timeout_s: int = Field(default=5, ge=1)
    # Appends and reads; a training set may run for longer (build_timeout_s).
    statement_timeout_s: float = Field(default=30.0, gt=0)
    build_timeout_s: float = Field(default=3600.0, gt=0)


OfflineStoreConfig = Annotated[
    DuckDbOfflineStoreConfig | PostgresOfflineStoreConfig,
    Field(discriminator="type"),
]


def for_project(config: OfflineStoreConfig, *, data_dir: Path) -> OfflineStoreConfig:
    """``config`` with the project's file filled in where it left the path ``None``."""
    if isinstance(config, DuckDbOfflineStoreConfig) and config.path is None:
        return config.model_copy(update={"path": Path(data_dir) / DUCKDB_FILE})
    return config
