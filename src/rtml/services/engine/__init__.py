"""The embedded feature engine: ``rtml run engine``, ``rtml backfill``, ``rtml materialize``.

* :class:`EngineService` -- the valid topic in; every feature view's per-key state to the
  online store and every valid event to the offline store, exactly once across crashes,
  with a watermark, late-event counts and freshness (:mod:`.service`);
* :func:`backfill` / :func:`materialize` -- rebuild the online state from the offline
  store's events (:mod:`.rebuild`).

Nothing is imported here eagerly, so that ``rtml.config`` can import :mod:`.settings`
without loading the engine. See ``docs/engine.md``.
"""

from typing import Any

_LAZY = {
    "EngineService": "rtml.services.engine.service",
    "EngineStats": "rtml.services.engine.stats",
    "BackfillStats": "rtml.services.engine.rebuild",
    "backfill": "rtml.services.engine.rebuild",
    "materialize": "rtml.services.engine.rebuild",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:  # ``from rtml.services.engine import EngineService``, lazily
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
