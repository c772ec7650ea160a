"""Typed configs of the prediction log backends (``server.predict.log.backend`` in rtml.yaml).

Left unset, the log follows the offline store: ``parquet`` files beside a DuckDB warehouse,
a ``predictions`` table in the PostgreSQL one. See docs/serving.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

PREDICTIONS_DIR = "predictions"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParquetPredictionLogConfig(_Strict):
    """Parquet files under ``<data_dir>/predictions/<model>/date=<YYYY-MM-DD>/``, one per
    flushed batch (written to a temporary name, then renamed: readers never see half a
    file). DuckDB reads them with ``read_parquet('<dir>/**/*.parquet')``; no writer lock is
    shared with the offline store's DuckDB file."""

    type: Literal["parquet"] = "parquet"
    # None: <data_dir>/predictions
    path: Path | None = None


class PostgresPredictionLogConfig(_Strict):
    """A ``predictions`` table on PostgreSQL, appended with ``COPY``."""

    type: Literal["postgres"] = "postgres"
    # None: the offline store's URL when it is PostgreSQL, else the local default.
    url: str | None = None
    namespace: str = Field(default="rtml_offline", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    table: str = Field(default="predictions", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    connect_timeout_s: int = Field(default=5, ge=1)
    statement_timeout_s: float = Field(default=30.0, gt=0)


class MemoryPredictionLogConfig(_Strict):
    """In-process, for tests: logs opened with the same ``name`` share their rows."""

    type: Literal["memory"] = "memory"
    name: str | None = None


PredictionLogConfig = Annotated[
    ParquetPredictionLogConfig | PostgresPredictionLogConfig | MemoryPredictionLogConfig,
    Field(discriminator="type"),
]
