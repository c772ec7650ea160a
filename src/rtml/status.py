"""``rtml status``: where a project stands, read from its own stores (nothing is started).

:func:`project_status` returns one JSON-able dict of sections, each read on its own so that a
store that does not answer spoils only its section (``{"error": "..."}``):

* ``project`` -- name, directory, what the definitions hold;
* ``backends`` -- the backend type of every role, as the settings resolve them;
* ``engine`` -- the engine checkpoint in the online store: when it was written, the
  watermark (the latest event time it has applied), its counts, and the views whose stored
  state another definition built (to backfill);
* ``models`` -- per model: the champion version and its test metrics, how many versions;
* ``up`` -- ``rtml up``'s status file: whether it runs, and each component's state;
* ``events`` (``counts=True`` only) -- valid, invalid and duplicate events, read from the
  topics and the dead letters in full (O(events)).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from rtml.project import Project
from rtml.timeutil import from_millis


def project_status(project: Project, *, counts: bool = False) -> dict[str, Any]:
    """The sections above for ``project``; ``counts`` adds the exact event counts."""
    sections: dict[str, Callable[[], Any]] = {
        "project": lambda: _project(project),
        "backends": lambda: backends(project),
        "engine": lambda: _engine(project),
        "models": lambda: _models(project),
        "up": lambda: _up(project),
    }
    if counts:
        sections["events"] = lambda: _events(project)
    out: dict[str, Any] = {}
    for name, read in sections.items():
        try:
            out[name] = read()
        except Exception as exc:  # noqa: BLE001 - one section's failure is its answer
            first = next(iter(str(exc).splitlines()), "")
            out[name] = {"error": first[:500] or type(exc).__name__}
    return out


def failed_sections(status: dict[str, Any]) -> list[str]:
    """The sections that could not be read."""
    return [name for name, value in status.items() if isinstance(value, dict) and "error" in value]


def backends(project: Project) -> dict[str, str]:
    """The backend type of every role, as the project's settings resolve them."""
    c = project.config
    out: dict[str, str] = {
        "event_log": c.event_log.type,
        "schema_registry": c.schema_registry.type,
        "dead_letter": c.dead_letter.type,
        "offline_store": c.offline_store.type,
        "online_store": c.online_store.type,
        "trainer": c.trainer.type,
        # mlflow_server: a tracking server (http[s]://); mlflow_local: SQLite under data_dir.
        "tracking": f"{c.tracking.type}_{'server' if _is_server(c.tracking.tracking_uri) else 'local'}",
        "serving": c.serving.type,
    }
    if getattr(c.dead_letter, "index", None) is not None:
        out["dead_letter_index"] = "opensearch"
    return out


def _is_server(uri: str | None) -> bool:
    return uri is not None and uri.startswith(("http://", "https://"))


def _project(project: Project) -> dict[str, Any]:
    d = project.definitions
    return {
        "name": project.config.project,
        "root": str(project.root),
        "data_dir": str(project.data_dir),
        "sources": sorted(d.sources),
        "feature_views": sorted(d.feature_views),
        "models": sorted(d.models),
    }


def _engine(project: Project) -> dict[str, Any]:
    from rtml.backends.online_store.factory import open_online_store
    from rtml.services.engine import checkpoint as ckpt

    config = project.config
    name = ckpt.checkpoint_name(config.engine.group)
    store = open_online_store(config.online_store, project=config.project, data_dir=project.data_dir)
    try:
        blob = store.checkpoint(name)
    finally:
        store.close()
    if blob is None:
        return {"checkpoint": None, "note": "no engine checkpoint yet: run `rtml run engine` (or `rtml up`)"}
    found = ckpt.decode(blob, name)
    now_ms = time.time_ns() // 1_000_000
    watermark = max(found.max_event_by_partition.values(), default=None)
    return {
        "checkpoint": name,
        "built_by": found.built_by,
        "written_at": _iso(found.written_ms),
        "written_s_ago": _age(now_ms, found.written_ms),
        "watermark": _iso(watermark),
        "watermark_s_ago": _age(now_ms, watermark),
        "counts": dict(found.counts),
        "stale_views": sorted(ckpt.stale_views(found, list(project.definitions.feature_views.values()))),
    }


def _models(project: Project) -> dict[str, Any]:
    from rtml.backends.tracking import open_registry

    models = sorted(project.definitions.models)
    if not models:
        return {}
    alias = project.config.training.promotion.alias
    registry = open_registry(project)
    out: dict[str, Any] = {}
    try:
        for model in models:
            versions = registry.versions(model)
            champion = next((v for v in versions if alias in v.aliases), None)
            out[model] = {
                "versions": len(versions),
                alias: None if champion is None else champion.version,
                "test_metrics": {} if champion is None else dict(champion.metrics),
                "latest": versions[0].version if versions else None,
            }
    finally:
        registry.close()
    return out


def _up(project: Project) -> dict[str, Any]:
    from rtml.services.supervisor.supervisor import pid_alive, status_path

    path = status_path(project)
    try:
        status = json.loads(path.read_text())
    except FileNotFoundError:
        return {"state": "never run", "status_file": str(path)}
    state = status.get("state")
    if state != "stopped" and not pid_alive(status.get("pid")):
        state = "dead (its status file was not closed: the next `rtml up` stops what it left)"
    components = {
        name: {k: c.get(k) for k in ("state", "pid", "restarts", "last_exit")}
        for name, c in (status.get("components") or {}).items()
    }
    return {
        "state": state,
        "pid": status.get("pid"),
        "updated_at": status.get("updated_at"),
        "server_port": status.get("server_port"),
        "components": components,
        "status_file": str(path),
    }


def _events(project: Project) -> dict[str, Any]:
    from rtml.services.validator.counts import counts as event_counts

    found = event_counts(project)
    return {k: found[k] for k in ("valid", "invalid", "duplicates", "total", "invalid_by_code")}


def _iso(ms: int | None) -> str | None:
    return None if not ms else from_millis(ms).isoformat()


def _age(now_ms: int, ms: int | None) -> float | None:
    return None if not ms else round((now_ms - ms) / 1000, 1)
