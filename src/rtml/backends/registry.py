"""Name -> implementation map of every backend, imported lazily.

A backend's optional dependency lives in a pip extra; a missing one raises
:class:`~rtml.errors.MissingExtraError` naming the extra to install.
"""

from __future__ import annotations

import importlib
from typing import Any

from rtml.errors import ConfigError, MissingExtraError

# role -> backend name -> ("module:Class", pip extra or None)
BACKENDS: dict[str, dict[str, tuple[str, str | None]]] = {
    "event_log": {
        "memory": ("rtml.backends.event_log.memory:MemoryEventLog", None),
        "local": ("rtml.backends.event_log.local:LocalEventLog", None),
        "kafka": ("rtml.backends.event_log.kafka:KafkaEventLog", "kafka"),
    },
    # The store of rtml's own schema registry; `external` has none (see schema_store).
    "schema_registry": {
        "embedded": ("rtml.backends.schema_store.sqlite:SqliteSchemaStore", None),
        "postgres": ("rtml.backends.schema_store.postgres:PostgresSchemaStore", "postgres"),
    },
    # Where invalid events end (see docs/dead-letters.md).
    "dead_letter": {
        "memory": ("rtml.backends.dead_letter.memory:MemoryDeadLetterSink", None),
        "table": ("rtml.backends.dead_letter.table:TableDeadLetterSink", None),
        "kafka": ("rtml.backends.dead_letter.kafka:KafkaDeadLetterSink", "kafka"),
        "opensearch": ("rtml.backends.dead_letter.opensearch:OpenSearchDeadLetterSink", None),
    },
    # Valid events and point-in-time training sets (see docs/offline-store.md).
    "offline_store": {
        "duckdb": ("rtml.backends.offline_store.duckdb:DuckDbOfflineStore", None),
        "postgres": ("rtml.backends.offline_store.postgres:PostgresOfflineStore", "postgres"),
    },
    # The latest feature state per (view, key) for serving (see docs/online-store.md).
    "online_store": {
        "memory": ("rtml.backends.online_store.memory:MemoryOnlineStore", None),
        "sqlite": ("rtml.backends.online_store.sqlite:SqliteOnlineStore", None),
        "redis": ("rtml.backends.online_store.redis:RedisOnlineStore", "redis"),
    },
    # Where tuning trials run (see docs/training.md).
    "trainer": {
        "local": ("rtml.backends.trainer.local:LocalTrainer", None),
        "ray": ("rtml.backends.trainer.ray:RayTrainer", "ray"),
    },
    # Experiment tracking and the model registry (see docs/training.md).
    "tracking": {
        "mlflow": ("rtml.backends.tracking.mlflow:MlflowModelRegistry", None),
    },
    # Every prediction served, with its features and model version (see docs/serving.md).
    "prediction_log": {
        "memory": ("rtml.backends.prediction_log.memory:MemoryPredictionLog", None),
        "parquet": ("rtml.backends.prediction_log.parquet:ParquetPredictionLog", None),
        "postgres": ("rtml.backends.prediction_log.postgres:PostgresPredictionLog", "postgres"),
    },
    # How predictions are served (see docs/serving.md).
    "serving": {
        "uvicorn": ("rtml.backends.serving.uvicorn:UvicornServing", None),
        "ray_serve": ("rtml.backends.serving.ray_serve:RayServeServing", "serve"),
    },
}


def load_backend_class(role: str, name: str) -> Any:
    """Import and return the class implementing backend ``name`` of ``role``."""
    try:
        target, extra = BACKENDS[role][name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS.get(role, {}))) or "none"
        raise ConfigError(
            f"unknown {role} backend {name!r}; known backends: {known}. "
            f"Fix: set {role}.type in rtml.yaml to one of them"
        ) from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if extra is None or (exc.name or "").startswith("rtml"):
            raise
        raise MissingExtraError(name, extra, exc.name or "?") from exc
    return getattr(module, class_name)


def open_backend(role: str, config: Any) -> Any:
    """Build the backend of ``role`` described by the typed config ``config``.

    Every backend class takes its own typed config as the only argument.
    """
    cls = load_backend_class(role, config.type)
    return cls(config)
