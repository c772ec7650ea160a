"""Opening the prediction log a server writes to."""

from __future__ import annotations

from pathlib import Path

from rtml.backends.offline_store.config import OfflineStoreConfig, PostgresOfflineStoreConfig
from rtml.backends.prediction_log.base import PredictionLog
from rtml.backends.prediction_log.config import (
    PREDICTIONS_DIR,
    ParquetPredictionLogConfig,
    PostgresPredictionLogConfig,
    PredictionLogConfig,
)


def resolve_config(
    config: PredictionLogConfig | None, *, offline_store: OfflineStoreConfig, data_dir: Path
) -> PredictionLogConfig:
    """``config`` with the project's defaults filled in. ``None`` follows the offline store:
    a PostgreSQL warehouse gets a ``predictions`` table in it (same URL and namespace), a
    DuckDB one Parquet files under ``<data_dir>/predictions``."""
    if config is None:
        if isinstance(offline_store, PostgresOfflineStoreConfig):
            return PostgresPredictionLogConfig(url=offline_store.url, namespace=offline_store.namespace)
        config = ParquetPredictionLogConfig()
    if isinstance(config, ParquetPredictionLogConfig) and config.path is None:
        return config.model_copy(update={"path": Path(data_dir) / PREDICTIONS_DIR})
    if isinstance(config, PostgresPredictionLogConfig) and config.url is None:
        url = offline_store.url if isinstance(offline_store, PostgresOfflineStoreConfig) else None
        if url is not None:
            return config.model_copy(update={"url": url})
    return config


def open_prediction_log(config: PredictionLogConfig) -> PredictionLog:
    """Open the backend ``config`` names (resolve it with :func:`resolve_config` first)."""
    from rtml.backends.registry import open_backend

    log: PredictionLog = open_backend("prediction_log", config)
    return log
