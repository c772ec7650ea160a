"""The model registry on MLflow: a local SQLite store (embedded) or a tracking server.

Everything goes through one ``MlflowClient`` per registry (never MLflow's fluent, process-wide
active run), so that several registries can live in one process. A run holds the params,
metrics, tags and artifacts of one training (see :mod:`rtml.backends.tracking.run_files`);
its model is registered as a new version of the registered model named after the rtml
model. Serving loads a version by downloading its ``model/model.ubj`` only.

MLflow's HTTP client retries a failed request up to 7 times with backoff (minutes); a
registry sets ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (from ``timeout_s``),
``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` (2) and ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` (1) in the
process environment unless they are already set, and turns any failure to reach the server
into a :class:`~rtml.errors.BackendUnavailableError`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rtml.backends.tracking import tags as T
from rtml.backends.tracking.base import LoadedModel, ModelVersion
from rtml.backends.tracking.config import MlflowTrackingConfig
from rtml.backends.tracking.history import AliasChange
from rtml.backends.tracking.run_files import BOOSTER_PATH, FEATURES_FILE, MODEL_DIR, write_run_files
from rtml.core.training.report import TrainingReport
from rtml.errors import BackendUnavailableError, ConfigError, InvalidInputError

HISTORY_TAG = "rtml.alias_history."  # + "<alias>.<at_ms>-<random>" on the registered model
START_HINT = "Fix: start it (scripts/services.sh start mlflow) or set tracking.tracking_uri in rtml.yaml"
_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
_EXISTS = "RESOURCE_ALREADY_EXISTS"
_QUIET_LOGGERS = ("alembic", "mlflow.store.db.utils", "mlflow.store.db", "mlflow.tracking._tracking_service")


def _prepare_process(timeout_s: float) -> None:
    """Bounded HTTP retries, no usage telemetry, no migration chatter (user settings win)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, math.ceil(timeout_s))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _forget_cached_stores() -> None:
    """MLflow caches one store object per URI for the life of the process. When the SQLite
    file behind a URI was deleted (a demo starting over), the cached store would keep
    reading the deleted file through its open connection: drop the cache."""
    try:
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore
        from mlflow.tracking._model_registry.registry import ModelRegistryStoreRegistry
        from mlflow.tracking._tracking_service.registry import TrackingStoreRegistry

        TrackingStoreRegistry._get_store_with_resolved_uri.cache_clear()
        ModelRegistryStoreRegistry._get_store_with_resolved_uri.cache_clear()
        for store in (TrackingStore, RegistryStore):  # and their SQLAlchemy engines, per URI
            with store._engine_map_lock:
                for engine in store._engine_map.values():
                    engine.dispose()
                store._engine_map.clear()
    except (ImportError, AttributeError):  # another MLflow layout: nothing cached that way
        pass


class MlflowModelRegistry:
    def __init__(self, config: MlflowTrackingConfig) -> None:
        if config.tracking_uri is None:
            raise ConfigError(
                "tracking.tracking_uri is not set. Fix: open the registry with "
                "rtml.backends.tracking.open_registry(project), which fills in the project's local store"
            )
        self.config = config
        self.uri = config.tracking_uri
        self.remote = self.uri.startswith(("http://", "https://"))
        _prepare_process(config.timeout_s)
        if self.remote:
            self._check_reachable()
        elif self.uri.startswith("sqlite:///"):
            file = Path(self.uri.removeprefix("sqlite:///"))
            if not file.exists():
                _forget_cached_stores()  # a store of a deleted file of the same name may be cached
            file.parent.mkdir(parents=True, exist_ok=True)
        from mlflow import MlflowClient

        with self._errors("open the store"):
            self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            if not self.remote:  # a local store is created and migrated on first use: do it now
                self._client.search_experiments(max_results=1)
        self._experiment_id: str | None = None

    def registered_name(self, model: str) -> str:
        """The name of rtml model ``model`` in MLflow's registry (``tracking.registered_model_name``)."""
        return self.config.registered_model_name.replace("{model}", model)

    # -- the port ---------------------------------------------------------------------------
    def log_run(self, report: TrainingReport) -> ModelVersion:
        from mlflow.entities import Metric, Param, RunTag

        now_ms = time.time_ns() // 1_000_000
        stamp = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y%m%d-%H%M%S")
        with self._errors("log the training run"):
            experiment_id = self._experiment()
            run = self._client.create_run(
                experiment_id, run_name=f"{report.model}-{stamp}", tags=_run_tags(report)
            )
            run_id = run.info.run_id
            try:
                params = [Param(k, v) for k, v in _params(report).items()]
                # Non-finite numbers (a failed trial, an undefined AUC) are left out: not every
                # store takes them.
                metrics = [Metric(k, v, now_ms, s) for k, v, s in _metrics(report) if math.isfinite(v)]
                for i in range(0, len(params), 100):
                    self._client.log_batch(run_id, params=params[i : i + 100])
                for i in range(0, len(metrics), 900):
                    self._client.log_batch(run_id, metrics=metrics[i : i + 900])
                self._client.log_batch(run_id, tags=[RunTag("mlflow.note.content", _note(report))])
                with tempfile.TemporaryDirectory(prefix="rtml-run-") as tmp:
                    write_run_files(report, Path(tmp))
                    self._client.log_artifacts(run_id, tmp)
            except BaseException:
                self._end_run(run_id, "FAILED")
                raise
            self._client.set_terminated(run_id, "FINISHED")
            self._ensure_registered_model(report.model)
            created = self._client.create_model_version(
                self.registered_name(report.model),
                source=f"{run.info.artifact_uri}/{MODEL_DIR}",
                run_id=run_id,
                tags=T.version_tags(report),
                description=f"rtml {report.trainer} training, test {report.metric} "
                f"{report.test_metrics.get(report.metric, float('nan')):.4f}",
                await_creation_for=0,
            )
        return self._version(created, {}, report.model)

    def versions(self, model: str) -> list[ModelVersion]:
        with self._errors(f"list the versions of {model!r}"):
            aliases = self._aliases(model)
            if aliases is None:
                return []
            found: list[Any] = []
            token = None
            while True:
                page = self._client.search_model_versions(
                    f"name = '{_quote(self.registered_name(model))}'", max_results=1000, page_token=token
                )
                found.extend(page)
                token = page.token
                if not token:
                    break
        versions = [self._version(mv, aliases, model) for mv in found]
        return sorted(versions, key=lambda v: int(v.version), reverse=True)

    def alias_version(self, model: str, alias: str) -> str | None:
        with self._errors(f"read the alias {alias!r} of {model!r}"):
            try:  # one request; get_model_version_by_alias fails on an unknown alias
                aliases = self._client.get_registered_model(self.registered_name(model)).aliases or {}
            except Exception as exc:
                if _code(exc) == _NOT_FOUND:
                    return None
                raise
        version = aliases.get(alias)
        return str(version) if version is not None else None

    def set_alias(self, model: str, alias: str, version: str) -> None:
        with self._errors(f"move the alias {alias!r} of {model!r} to version {version}"):
            self._get_version(model, version)
            self._client.set_registered_model_alias(self.registered_name(model), alias, version)

    def load(self, model: str, version: str) -> LoadedModel:
        with self._errors(f"load version {version} of {model!r}"):
            mv = self._get_version(model, version)
            tags = dict(mv.tags or {})
            with tempfile.TemporaryDirectory(prefix="rtml-load-") as tmp:
                booster = Path(self._client.download_artifacts(mv.run_id, BOOSTER_PATH, tmp)).read_bytes()
                if T.FEATURE_NAMES in tags:
                    names = json.loads(tags[T.FEATURE_NAMES])
                else:  # a version registered without the tag: read the run's features.json
                    names = json.loads(
                        Path(self._client.download_artifacts(mv.run_id, FEATURES_FILE, tmp)).read_text()
                    )["feature_names"]
        return LoadedModel(
            model=model,
            version=str(mv.version),
            booster=booster,
            feature_names=tuple(names),
            definitions_fingerprint=tags.get(T.FINGERPRINT, ""),
        )

    def close(self) -> None:
        pass

    # -- alias history (rtml.backends.tracking.history) -------------------------------------
    def set_version_tags(self, model: str, version: str, tags: Mapping[str, str]) -> None:
        with self._errors(f"tag version {version} of {model!r}"):
            for key, value in tags.items():
                self._client.set_model_version_tag(self.registered_name(model), version, key, value)

    def record_alias_change(self, change: AliasChange) -> None:
        key = f"{HISTORY_TAG}{change.alias}.{change.at_ms:013d}-{uuid.uuid4().hex[:6]}"
        with self._errors(f"record the move of alias {change.alias!r} of {change.model!r}"):
            self._client.set_registered_model_tag(self.registered_name(change.model), key, change.to_json())

    def alias_history(self, model: str, alias: str) -> list[AliasChange]:
        prefix = f"{HISTORY_TAG}{alias}."
        with self._errors(f"read the history of alias {alias!r} of {model!r}"):
            try:
                tags = self._client.get_registered_model(self.registered_name(model)).tags or {}
            except Exception as exc:
                if _code(exc) == _NOT_FOUND:
                    return []
                raise
        return [AliasChange.from_json(tags[key]) for key in sorted(k for k in tags if k.startswith(prefix))]

    # -- helpers ----------------------------------------------------------------------------
    def _check_reachable(self) -> None:
        import httpx

        try:
            response = httpx.get(f"{self.uri.rstrip('/')}/health", timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            raise BackendUnavailableError(
                f"MLflow tracking server at {self.uri} is unreachable ({type(exc).__name__}: {exc}). "
                f"{START_HINT}"
            ) from None
        if response.status_code >= 500:
            raise BackendUnavailableError(
                f"MLflow tracking server at {self.uri} is unhealthy (HTTP {response.status_code}). "
                f"{START_HINT}"
            )

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """MLflow's and the HTTP client's failures as rtml errors, said once here."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except MlflowException as exc:
            code = _code(exc)
            message = str(exc).splitlines()[0][:300]
            if code == _NOT_FOUND:
                raise InvalidInputError(f"cannot {what}: {message}. Fix: see `rtml models list`") from None
            if self.remote and (
                code in {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE"} or "API request" in message
            ):
                raise BackendUnavailableError(
                    f"MLflow tracking server at {self.uri} is unreachable or failing: "
                    f"cannot {what} ({message}). {START_HINT}"
                ) from None
            raise BackendUnavailableError(f"MLflow store {self.uri}: cannot {what} ({message})") from exc
        except OSError as exc:  # requests' ConnectionError is an OSError too
            where = (
                f"MLflow tracking server at {self.uri} is unreachable"
                if self.remote
                else f"MLflow store {self.uri}"
            )
            hint = START_HINT if self.remote else "Fix: check that the data directory is writable"
            raise BackendUnavailableError(f"{where}: cannot {what} ({exc}). {hint}") from None

    def _experiment(self) -> str:
        if self._experiment_id is not None:
            return self._experiment_id
        name = self.config.experiment or "rtml"
        found = self._client.get_experiment_by_name(name)
        if found is None:
            location = self.config.artifact_location
            try:
                self._experiment_id = self._client.create_experiment(
                    name, artifact_location=location.resolve().as_uri() if location else None
                )
            except Exception as exc:
                if _code(exc) != _EXISTS:  # created by another process meanwhile
                    raise
                found = self._client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self._client.restore_experiment(found.experiment_id)
            self._experiment_id = found.experiment_id
        assert self._experiment_id is not None
        return self._experiment_id

    def _ensure_registered_model(self, model: str) -> None:
        try:
            self._client.create_registered_model(self.registered_name(model), tags={T.MODEL: model})
        except Exception as exc:
            if _code(exc) != _EXISTS:
                raise

    def _aliases(self, model: str) -> dict[str, list[str]] | None:
        """version -> its aliases; None if the registered model does not exist."""
        try:
            registered = self._client.get_registered_model(self.registered_name(model))
        except Exception as exc:
            if _code(exc) == _NOT_FOUND:
                return None
            raise
        by_version: dict[str, list[str]] = {}
        for alias, version in (registered.aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        return by_version

    def _get_version(self, model: str, version: str) -> Any:
        try:
            return self._client.get_model_version(self.registered_name(model), str(version))
        except Exception as exc:
            if _code(exc) == _NOT_FOUND:
                raise InvalidInputError(
                    f"model {model!r} has no version {version!r}. Fix: see `rtml models list --model {model}`"
                ) from None
            raise

    def _end_run(self, run_id: str, status: str) -> None:
        try:
            self._client.set_terminated(run_id, status)
        except Exception:  # noqa: S110 - the original error matters more
            pass

    @staticmethod
    def _version(mv: Any, aliases: Mapping[str, list[str]], model: str) -> ModelVersion:
        tags = {str(k): str(v) for k, v in (mv.tags or {}).items()}
        own = aliases.get(str(mv.version)) or list(getattr(mv, "aliases", None) or [])
        return ModelVersion(
            model=model,
            version=str(mv.version),
            run_id=mv.run_id or "",
            created_ms=int(mv.creation_timestamp or 0),
            aliases=tuple(sorted(own)),
            metrics=T.metrics_from_tags(tags),
            tags=tags,
        )


def _code(exc: BaseException) -> str | None:
    return getattr(exc, "error_code", None)


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace("'", "\\'")


def _run_tags(report: TrainingReport) -> dict[str, str]:
    tags = T.version_tags(report)
    names = tags[T.FEATURE_NAMES]
    if len(names) > 8000:  # MLflow's limit for run tags; the full list is in features.json
        tags[T.FEATURE_NAMES] = names[:7990] + "..."
    return tags


def _params(report: TrainingReport) -> dict[str, str]:
    params = {str(k): str(v)[:6000] for k, v in sorted(report.params.items())}
    params |= {
        "rtml.trainer": report.trainer,
        "rtml.seed": str(report.seed),
        "rtml.trials": str(len(report.trials)),
        "rtml.best_iteration": str(report.best_iteration),
        "rtml.gap_ms": str(report.gap_ms),
        "rtml.features": str(len(report.feature_names)),
    }
    return params


def _metrics(report: TrainingReport) -> Iterator[tuple[str, float, int]]:
    for prefix, values in (("test_", report.test_metrics), ("validation_", report.validation_metrics)):
        for name, value in sorted(values.items()):
            yield prefix + name, float(value), 0
    for name, value in sorted(report.extra_metrics.items()):
        yield name, float(value), 0
    for split, window in (("train", report.train), ("validation", report.validation), ("test", report.test)):
        yield f"{split}_rows", float(window.rows), 0
        yield f"{split}_positives", float(window.positives), 0
    yield "train_seconds", float(report.train_seconds), 0
    for trial in report.trials:
        yield "trial_value", float(trial.value), trial.number


def _note(report: TrainingReport) -> str:
    lineage = report.lineage
    first = _iso(lineage.first_event_ms)
    last = _iso(lineage.last_event_ms)
    return (
        f"rtml model `{report.model}`, trained by the {report.trainer} trainer on {lineage.rows:,} rows "
        f"({lineage.positives:,} positive) with events from {first} to {last}. "
        f"Test window {_iso(report.test.start_ms)} .. {_iso(report.test.end_ms)} "
        f"({report.test.rows:,} rows); "
        f"test {report.metric} {report.test_metrics.get(report.metric, float('nan')):.4f}. "
        f"Definitions fingerprint {lineage.definitions_fingerprint}, "
        f"training set SHA-256 {lineage.dataset_sha256}."
    )


def _iso(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat() if ms is not None else "-"
