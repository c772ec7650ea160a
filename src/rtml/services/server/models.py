"""``ModelHolder``: the champion predictor of each model, swapped when the alias moves.

At start the holder loads the version each model's alias (``training.promotion.alias``,
``champion``) points at. A background thread then asks the registry every
``server.predict.poll_interval_s`` where the alias points (``alias_version``: one cheap
call per model); when it moved, the thread loads that version, builds its
:class:`~rtml.core.predict.Predictor` and swaps it in with one reference assignment.

Semantics:

- A request takes the predictor once (:meth:`ModelHolder.get`) and uses it to the end:
  a request in flight finishes on the version it started with; none fails or waits
  because of a swap (the load happens beside the traffic, not in front of it).
- The last ``keep_versions`` predictors stay loaded, so a rollback to one of them
  (``rtml models rollback``) is a pointer swap at the next poll.
- A version that fails to load (registry down, a model trained on other features) is
  logged and counted; the current one keeps serving and the load is retried at the next
  poll. An alias that disappears leaves the current version serving (logged).
- A model with no version loaded answers 503 (``model_not_loaded``) and ``/ready`` says so.

No web framework here: a Ray Serve deployment can hold the same object.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from rtml.core.predict import Predictor, RequestSpec
from rtml.definitions.model import Model
from rtml.errors import RtmlError
from rtml.features import NotFoundError
from rtml.services.logging import log_event


class RegistryLike(Protocol):
    """What the holder needs of :class:`rtml.backends.tracking.base.ModelRegistry`."""

    def alias_version(self, model: str, alias: str) -> str | None: ...
    def load(self, model: str, version: str) -> Any: ...
    def close(self) -> None: ...


class ModelNotLoadedError(RtmlError):
    """A model has no version loaded (no champion yet, or the registry cannot be reached)."""

    http_status = 503


@dataclass
class _Slot:
    """One model's state: the predictor serving, the ones kept, the last problem."""

    model: Model
    spec: RequestSpec
    current: Predictor | None = None
    kept: OrderedDict[str, Predictor] = field(default_factory=OrderedDict)
    alias_version: str | None = None
    error: str | None = None
    loaded_at: float | None = None


class ModelHolder:
    """The serving version of every model of a project, following the registry's alias."""

    def __init__(
        self,
        models: Mapping[str, Model],
        specs: Mapping[str, RequestSpec],
        open_registry: Callable[[], RegistryLike],
        *,
        alias: str = "champion",
        poll_interval_s: float = 2.0,
        keep_versions: int = 3,
        nthread: int = 1,
        definitions_fingerprint: str | None = None,
        logger: logging.Logger,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.alias = alias
        self.poll_interval_s = poll_interval_s
        self._keep = keep_versions
        self._nthread = nthread
        self._fingerprint = definitions_fingerprint
        self._open_registry = open_registry
        self._registry: RegistryLike | None = None
        self._slots = {name: _Slot(model=m, spec=specs[name]) for name, m in models.items()}
        self._log = logger
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refresh_lock = threading.Lock()
        registry = registry if registry is not None else CollectorRegistry()
        self.swaps = Counter(
            "rtml_model_swaps", "Times the serving version of a model changed", ["model"], registry=registry
        )
        self.load_failures = Counter(
            "rtml_model_load_failures", "Versions that could not be loaded", ["model"], registry=registry
        )
        self.serving = Gauge(
            "rtml_model_serving",
            "1 for the version each model serves",
            ["model", "version"],
            registry=registry,
        )

    # -- requests -----------------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        return sorted(self._slots)

    def spec(self, model: str) -> RequestSpec:
        return self._slot(model).spec

    def get(self, model: str) -> Predictor:
        """The predictor serving ``model`` now (keep it for the whole request)."""
        slot = self._slot(model)
        predictor = slot.current
        if predictor is None:
            why = slot.error or f"no version of it has the alias {self.alias!r} yet"
            raise ModelNotLoadedError(
                f"model {model!r} is not loaded: {why}. Fix: train and promote one (`rtml train`), "
                "or wait for the registry to come back"
            )
        return predictor

    def status(self) -> dict[str, dict[str, Any]]:
        """Per model: the version served, where the alias points, the last error."""
        out = {}
        for name, slot in sorted(self._slots.items()):
            current = slot.current
            out[name] = {
                "loaded": current is not None,
                "version": current.version if current is not None else None,
                "alias": self.alias,
                "alias_version": slot.alias_version,
                "error": slot.error,
            }
        return out

    # -- following the alias ------------------------------------------------------------

    def refresh(self) -> None:
        """Ask the registry once per model and swap in any version the alias moved to."""
        with self._refresh_lock:
            registry = self._registry_or_none()
            if registry is None:
                return
            for name, slot in self._slots.items():
                self._refresh_one(registry, name, slot)

    def start(self) -> None:
        """Load the champions and follow the alias, in a background thread: the server
        answers at once (``/ready`` is 503 and predictions ``model_not_loaded`` until the
        first load is done)."""
        self._thread = threading.Thread(target=self._run, name="rtml-model-poller", daemon=True)
        self._thread.start()

    def wait_loaded(self, timeout: float) -> bool:
        """Wait until every model has a version loaded (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while not all(slot.current is not None for slot in self._slots.values()):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._registry is not None:
            try:
                self._registry.close()
            finally:
                self._registry = None

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception as exc:  # the poller must outlive any one failure
                log_event(self._log, "model_poll_failed", level=logging.WARNING, error=repr(exc))
            if self._stop.wait(self.poll_interval_s):
                return

    def _registry_or_none(self) -> RegistryLike | None:
        if self._registry is None:
            try:
                self._registry = self._open_registry()
            except Exception as exc:
                message = f"the model registry cannot be opened ({exc})"
                if any(slot.error != message for slot in self._slots.values()):
                    log_event(self._log, "registry_unavailable", level=logging.WARNING, error=str(exc))
                for slot in self._slots.values():
                    slot.error = message
                return None
        return self._registry

    def _refresh_one(self, registry: RegistryLike, name: str, slot: _Slot) -> None:
        try:
            version = registry.alias_version(name, self.alias)
        except Exception as exc:
            message = f"the registry did not answer where {self.alias!r} points ({exc})"
            if slot.error != message:
                log_event(self._log, "alias_poll_failed", level=logging.WARNING, model=name, error=str(exc))
            slot.error = message
            return
        slot.alias_version = version
        current = slot.current
        if version is None:
            if current is not None and slot.error is None:
                log_event(
                    self._log, "alias_removed", level=logging.WARNING, model=name, serving=current.version
                )
            slot.error = None if current is not None else f"no version has the alias {self.alias!r}"
            return
        if current is not None and current.version == version:
            slot.error = None
            return
        predictor = slot.kept.get(version)
        if predictor is None:
            try:
                predictor = self._load(registry, slot, version)
            except Exception as exc:
                self.load_failures.labels(name).inc()
                slot.error = f"version {version} could not be loaded ({exc})"
                log_event(
                    self._log,
                    "model_load_failed",
                    level=logging.ERROR,
                    model=name,
                    version=version,
                    error=str(exc),
                )
                return
        slot.kept[version] = predictor
        slot.kept.move_to_end(version)
        while len(slot.kept) > self._keep:
            slot.kept.popitem(last=False)
        slot.current = predictor  # the swap: one reference assignment
        slot.error = None
        slot.loaded_at = time.time()
        self.swaps.labels(name).inc()
        if current is not None:
            self.serving.remove(name, current.version)
        self.serving.labels(name, version).set(1)
        log_event(
            self._log,
            "model_swapped",
            model=name,
            version=version,
            previous=current.version if current is not None else None,
        )

    def _load(self, registry: RegistryLike, slot: _Slot, version: str) -> Predictor:
        loaded = registry.load(slot.model.name, version)
        fingerprint = getattr(loaded, "definitions_fingerprint", None)
        if self._fingerprint is not None and fingerprint and fingerprint != self._fingerprint:
            log_event(
                self._log,
                "model_definitions_differ",
                level=logging.WARNING,
                model=slot.model.name,
                version=version,
                trained_with=fingerprint,
                serving_with=self._fingerprint,
            )
        return Predictor.from_loaded(loaded, slot.model, slot.spec, nthread=self._nthread)

    def _slot(self, model: str) -> _Slot:
        slot = self._slots.get(model)
        if slot is None:
            known = ", ".join(self.models) or "none (define a Model)"
            raise NotFoundError(f"no model named {model!r}. Fix: use one of {known}")
        return slot
