"""The Feast peer of bench/serving.py: Feast's Python feature server on the same Redis data.

Two halves in one file:

- imported by bench/serving.py (rtml's venv): :func:`export` writes what Feast needs --
  ``views.json`` (per view: join keys and features) and ``<view>.parquet`` (one row per key:
  the keys, ``event_timestamp`` and the feature values rtml's online store serves for it
  now); :class:`FeastServer` runs the Feast half below in Feast's venv, then starts
  ``feast serve`` (gunicorn + uvicorn workers) on that repo and stops it (and removes its
  Redis data) at the end;
- ``bench/.venv-feast/bin/python bench/feast_serving.py setup WORKDIR REDIS_URL PROJECT``
  (Feast's venv): writes ``feature_store.yaml`` (local provider, Redis online store, the
  file offline store), applies one ``FeatureView`` per view over its parquet file, and
  ``materialize``s them into Redis -- Feast's own way to load an online store;
  ``teardown WORKDIR`` removes the project's Redis data.

The request measured is ``POST /get-online-features`` for one entity (a user and a product),
all the model's stored features (no on-demand features, no model): the features-only part
of what ``POST /predict/{model}`` does.

Feast's venv (Feast pins its own pandas/pyarrow/numpy), with its Redis extra:

    bash bench/feast/setup.sh
    bench/.venv-feast/bin/pip install 'feast[redis]==0.67.0'
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FEAST_PYTHON = HERE / ".venv-feast" / "bin" / "python"
SETUP_HINT = "bash bench/feast/setup.sh && bench/.venv-feast/bin/pip install 'feast[redis]==0.67.0'"


# -- the rtml side ----------------------------------------------------------------------------


def export(project: Any, model: str, entities: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    """Write the feature values rtml serves now for ``entities``' keys, per view, for Feast.
    Returns ``{"refs": [...], "keys": [...]}`` for the requests."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rtml.features import OnlineFeatures

    work.mkdir(parents=True, exist_ok=True)
    definition = project.definitions.models[model]
    with OnlineFeatures(project) as reader:
        plan = reader.plan(definition)
        served = reader.read(plan, entities)
    now = datetime.now(UTC)
    views: dict[str, Any] = {}
    refs: list[str] = []
    keys: list[str] = []
    for vr in plan.views:
        name = vr.view.name
        join_keys = list(vr.view.join_keys)
        keys += [k for k in join_keys if k not in keys]
        features = [feature for feature, _ in vr.features]
        rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        for entity, values in zip(entities, served, strict=True):
            key = tuple(entity[k] for k in join_keys)
            rows[key] = {f: values[q] for f, q in vr.features}
        kinds = {f: _kind([r[f] for r in rows.values()]) for f in features}
        columns: dict[str, Any] = {k: [key[i] for key in rows] for i, k in enumerate(join_keys)}
        columns["event_timestamp"] = [now - timedelta(minutes=1)] * len(rows)
        for f in features:
            cast = int if kinds[f] == "integer" else float
            columns[f] = [None if r[f] is None else cast(r[f]) for r in rows.values()]
        pq.write_table(pa.table(columns), work / f"{name}.parquet")
        views[name] = {"keys": join_keys, "features": [[f, kinds[f]] for f in features]}
        refs += [f"{name}:{f}" for f in features]
    (work / "views.json").write_text(json.dumps(views))
    return {"refs": refs, "keys": keys}


def _kind(values: list[Any]) -> str:
    """``integer`` when every value is an int (counts), else ``number``."""
    ints = all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values)
    return "integer" if ints else "number"


def request_body(refs: list[str], entity: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    return {"features": refs, "entities": {k: [entity[k]] for k in keys}, "full_feature_names": True}


class FeastServer:
    """``feast serve`` on the exported data, in Feast's venv; a context manager."""

    def __init__(self, work: Path, redis_url: str, port: int, workers: int) -> None:
        if not FEAST_PYTHON.exists():
            raise SystemExit(f"no Feast venv at {FEAST_PYTHON.parent.parent}. Fix: {SETUP_HINT}")
        self.work, self.redis_url, self.port, self.workers = work, redis_url, port, workers
        self.project = f"rtml_bench_{os.getpid()}"
        self.url = f"http://127.0.0.1:{port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FeastServer:
        t0 = time.perf_counter()
        self._feast("setup", self.redis_url, self.project)
        self.setup_s = time.perf_counter() - t0
        feast = FEAST_PYTHON.parent / "feast"
        self._process = subprocess.Popen(
            [str(feast), "serve", "-h", "127.0.0.1", "-p", str(self.port), "--no-access-log",
             "-w", str(self.workers), "--max-requests", "100000000", "--registry_ttl_sec", "3600"],
            cwd=self.work, stdout=subprocess.DEVNULL, stderr=(self.work / "feast-serve.log").open("wb"),
            start_new_session=True,
        )  # fmt: skip
        _wait_http(f"{self.url}/health", self._process, self.work / "feast-serve.log")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            try:
                os.killpg(self._process.pid, signal.SIGTERM)
                self._process.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self._process.kill()
        self._feast("teardown")

    def _feast(self, *args: str) -> None:
        done = subprocess.run(
            [str(FEAST_PYTHON), __file__, args[0], str(self.work), *args[1:]],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"the Feast side failed ({args[0]}):\n{done.stdout}\n{done.stderr}")


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited; see {log}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer in {timeout:g}s; see {log}")


# -- the Feast side (bench/.venv-feast) -----------------------------------------------------


def _feast_setup(work: Path, redis_url: str, project: str) -> None:
    from urllib.parse import urlparse

    from feast import Entity, FeatureStore, FeatureView, Field, FileSource
    from feast.types import Float64, Int64
    from feast.value_type import ValueType

    url = urlparse(redis_url)
    db = (url.path or "/0").strip("/") or "0"
    (work / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\nregistry: {work / 'registry.db'}\n"
        f'online_store:\n  type: redis\n  connection_string: "{url.hostname}:{url.port or 6379},db={db}"\n'
        "offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
    )
    views = json.loads((work / "views.json").read_text())
    store = FeatureStore(repo_path=str(work))
    entities = {
        key: Entity(name=key, join_keys=[key], value_type=ValueType.INT64)
        for view in views.values()
        for key in view["keys"]
    }
    objects: list[Any] = list(entities.values())
    for name, view in views.items():
        source = FileSource(name=f"{name}_source", path=str(work / f"{name}.parquet"),
                            timestamp_field="event_timestamp")  # fmt: skip
        schema = [
            Field(name=f, dtype=Int64 if kind == "integer" else Float64) for f, kind in view["features"]
        ]
        keys = [entities[k] for k in view["keys"]]
        objects.append(FeatureView(name=name, entities=keys, ttl=timedelta(days=1), schema=schema,
                                   source=source, online=True))  # fmt: skip
    store.apply(objects)
    now = datetime.now(UTC)
    store.materialize(start_date=now - timedelta(hours=1), end_date=now)


def _feast_teardown(work: Path) -> None:
    from feast import FeatureStore

    FeatureStore(repo_path=str(work)).teardown()


if __name__ == "__main__":
    command, where = sys.argv[1], Path(sys.argv[2])
    if command == "setup":
        _feast_setup(where, sys.argv[3], sys.argv[4])
    elif command == "teardown":
        _feast_teardown(where)
    else:
        raise SystemExit(f"unknown command {command!r}: setup or teardown")
