"""Project settings: ``rtml.yaml`` overridden by ``RTML_*`` environment variables.

Nested keys use a double underscore: ``RTML_EVENT_LOG__TYPE=kafka`` sets
``event_log.type``. The environment is injectable (``load_config(dir, environ={...})``)
so tests never touch ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from rtml.backends.dead_letter.config import DeadLetterConfig, TableDeadLetterConfig
from rtml.backends.event_log.config import EventLogConfig, LocalEventLogConfig
from rtml.backends.offline_store.config import DuckDbOfflineStoreConfig, OfflineStoreConfig
from rtml.backends.online_store.config import OnlineStoreConfig, SqliteOnlineStoreConfig
from rtml.backends.schema_store.config import EmbeddedSchemaRegistryConfig, SchemaRegistryConfig
from rtml.backends.serving.config import ServingConfig, UvicornServingConfig
from rtml.backends.tracking.config import MlflowTrackingConfig, TrackingConfig
from rtml.backends.trainer.config import LocalTrainerConfig, TrainerConfig
from rtml.core.training.settings import TrainingSettings
from rtml.errors import ConfigError
from rtml.raw_records import ProducerSettings
from rtml.services.engine.settings import EngineSettings
from rtml.services.server.settings import ServerSettings
from rtml.services.supervisor.settings import UpSettings
from rtml.timeutil import parse_duration, parse_timestamp

CONFIG_FILE = "rtml.yaml"
# The backend each role uses when rtml.yaml names none (the embedded default).
DEFAULT_BACKENDS = {
    "event_log": "local",
    "schema_registry": "embedded",
    "dead_letter": "table",
    "offline_store": "duckdb",
    "online_store": "sqlite",
    "trainer": "local",
    "tracking": "mlflow",
    "serving": "uvicorn",
}
ENV_PREFIX = "RTML_"


def _duration(value: str) -> str:
    parse_duration(value)  # raises ValueError with the accepted forms
    return value


class ValidatorAlertSettings(BaseModel):
    """When the invalid share of the events over the last ``window`` of processing time
    reaches ``invalid_rate`` (with at least ``min_events`` in the window), the validator
    raises an alert: a log line, a metric and, if set, a POST to ``webhook_url``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    invalid_rate: float = Field(default=0.2, gt=0, le=1)
    window: str = "1m"
    min_events: int = Field(default=100, ge=1)
    webhook_url: str | None = None
    webhook_timeout: str = "2s"

    _durations = field_validator("window", "webhook_timeout")(_duration)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {url!r}")
        return url


class ValidatorSettings(BaseModel):
    """``rtml run validator``: raw topic -> valid topic, duplicates topic, dead letters.
    See docs/validator.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The source whose schema and rules the raw topic's events follow; None: the only one.
    source: str | None = None
    group: str = Field(default="rtml-validator", min_length=1)
    batch_size: int = Field(default=5000, ge=1, le=1_000_000)
    poll_timeout: str = "500ms"
    # --until-idle stops after this many empty polls in a row (and, on Kafka, no lag).
    idle_polls: int = Field(default=2, ge=1)
    dedupe_horizon: str = "24h"
    dedupe_max_ids: int = Field(default=5_000_000, ge=1)
    max_future_skew: str = "5m"
    # What "now" is for the future check: "wall" (the clock), or a fixed ISO-8601 time
    # for replays of old data and tests, e.g. "2019-10-15T00:00:00Z".
    clock: str = "wall"
    max_event_bytes: int = Field(default=1_048_576, ge=64)
    # Kafka only. Kafka static membership (group.instance.id): a copy restarted with the
    # same id takes its partitions back at once instead of after the session timeout.
    instance_id: str | None = None
    # Kafka only: how soon the group notices a dead copy, and how soon the broker aborts
    # the open transaction of a killed one (its partitions wait for that abort).
    session_timeout: str = "10s"
    transaction_timeout: str = "10s"
    alert: ValidatorAlertSettings = Field(default_factory=ValidatorAlertSettings)

    _durations = field_validator(
        "poll_timeout", "dedupe_horizon", "max_future_skew", "session_timeout", "transaction_timeout"
    )(_duration)

    @field_validator("clock")
    @classmethod
    def _clock(cls, value: str) -> str:
        if value != "wall":
            try:
                parse_timestamp(value)
            except ValueError as exc:
                raise ValueError(
                    f"must be 'wall' or an ISO-8601 time with a zone such as "
                    f"'2019-10-15T00:00:00Z', got {value!r} ({exc})"
                ) from None
        return value


class RtmlConfig(BaseSettings):
    """Everything ``rtml.yaml`` may hold. Unknown keys are rejected."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    # The project's name: topics are <project>.events.raw/.valid/.invalid, Redis keys
    # rtml:<project>:..., the MLflow experiment and registered models carry it.
    project: str = Field("rtml", pattern=r"^[a-z][a-z0-9_\-]*$")
    # Where embedded backends keep their files, relative to the project directory.
    data_dir: Path = Path(".rtml")
    event_log: EventLogConfig = Field(default_factory=LocalEventLogConfig)
    schema_registry: SchemaRegistryConfig = Field(default_factory=EmbeddedSchemaRegistryConfig)
    # Where invalid events end; the table file defaults to <data_dir>/dead_letters.db.
    dead_letter: DeadLetterConfig = Field(default_factory=TableDeadLetterConfig)
    # Valid events and training sets; the DuckDB file defaults to <data_dir>/offline.duckdb.
    offline_store: OfflineStoreConfig = Field(default_factory=DuckDbOfflineStoreConfig)
    # Feature state for serving; the SQLite file defaults to <data_dir>/online.db,
    # Redis keys to rtml:<project>:... (docs/online-store.md).
    online_store: OnlineStoreConfig = Field(default_factory=SqliteOnlineStoreConfig)
    # `rtml run validator`: raw topic -> valid topic and dead letters (docs/validator.md).
    validator: ValidatorSettings = Field(default_factory=ValidatorSettings)
    # `rtml run engine`: valid events -> online state and offline store (docs/engine.md).
    engine: EngineSettings = Field(default_factory=EngineSettings)
    # How producers frame the raw topic's records (docs/ingestion.md).
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    # `rtml serve`: listen address and endpoint limits (docs/ingestion.md).
    server: ServerSettings = Field(default_factory=ServerSettings)
    # `rtml train`: splits, tuning, promotion policy (docs/training.md).
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    # Where tuning trials run: in-process or on Ray (docs/training.md).
    trainer: TrainerConfig = Field(default_factory=LocalTrainerConfig)
    # Experiment tracking and the model registry: MLflow (docs/model-registry.md).
    tracking: TrackingConfig = Field(default_factory=MlflowTrackingConfig)
    # How predictions are served: uvicorn or Ray Serve (docs/serving.md).
    serving: ServingConfig = Field(default_factory=UvicornServingConfig)
    # `rtml up`: the supervised long-running system (docs/up.md).
    up: UpSettings = Field(default_factory=UpSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_config() merges the file and the (injected) environment itself.
        return (init_settings,)

    def topic(self, name: str) -> str:
        """Full topic name, e.g. ``ecommerce.events.raw``."""
        return f"{self.project}.{name}"


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' own environment parsing, over an injected mapping."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._environ.items()}


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into ``base``; a section whose backend ``type`` changes is
    replaced whole, since the old backend's keys mean nothing to the new one."""
    out = dict(base)
    for key, value in override.items():
        current = out.get(key)
        switches_backend = (
            isinstance(value, Mapping)
            and isinstance(current, Mapping)
            and "type" in value
            and value["type"] != current.get("type")
        )
        if isinstance(value, Mapping) and isinstance(current, Mapping) and not switches_backend:
            out[key] = _deep_merge(dict(current), value)
        else:
            out[key] = value
    return out


def _resolve_paths(data: dict[str, Any], root: Path) -> dict[str, Any]:
    for key, value in data.items():
        if isinstance(value, dict):
            data[key] = _resolve_paths(dict(value), root)
        elif key in {"path", "data_dir", "artifact_location"} and isinstance(value, str | Path):
            path = Path(value)
            data[key] = path if path.is_absolute() else root / path
    return data


def _anchor_defaults(config: RtmlConfig, root: Path) -> RtmlConfig:
    """Resolve the relative default ``path`` of each role's section against ``root`` (paths
    given in the file are resolved before validation; defaults come after it)."""
    updates: dict[str, Any] = {}
    for name in type(config).model_fields:
        section = getattr(config, name)
        path = getattr(section, "path", None)
        if isinstance(path, Path) and not path.is_absolute() and str(path) != ":memory:":
            updates[name] = section.model_copy(update={"path": root / path})
    return config.model_copy(update=updates) if updates else config


def load_config(project_dir: str | Path = ".", environ: Mapping[str, str] | None = None) -> RtmlConfig:
    """Load ``<project_dir>/rtml.yaml`` (optional) and apply ``RTML_*`` overrides.

    Relative paths in the file are resolved against the project directory.
    """
    root = Path(project_dir).resolve()
    file = root / CONFIG_FILE
    data: dict[str, Any] = {}
    if file.exists():
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML ({exc}). Fix the syntax") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: the top level must be a mapping of settings")
        data = loaded
    env = environ if environ is not None else os.environ
    ours = {k: v for k, v in env.items() if k.upper().startswith(ENV_PREFIX)}
    env_data = _MappingEnvSource(RtmlConfig, ours)()
    merged = _deep_merge(data, env_data)
    merged.setdefault("data_dir", ".rtml")
    for role, default in DEFAULT_BACKENDS.items():
        if isinstance(merged.get(role), dict):
            merged[role].setdefault("type", default)
    try:
        config = _anchor_defaults(RtmlConfig(**_resolve_paths(merged, root)), root)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{file}: invalid settings ({problems}). See docs/configuration.md") from None
    return config
