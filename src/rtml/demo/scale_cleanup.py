"""``rtml demo --scale --cleanup``: delete what one scale run created on the servers.

Each step is independent: one that fails is reported (``<what> failed: <why>``) and the
others still run. What is deleted, all named after the run's project name:

* Kafka: the topics ``<project>.*`` (raw, valid, duplicates, dead letters);
* Redis: the keys ``<key_prefix>:*`` (the online state);
* OpenSearch: the indices ``<project>-dead-letters-*``;
* PostgreSQL: the offline store's schema (``offline_store.namespace``, the run's name);
* MLflow: the run's registered model (``{project}.{model}``, rtml.scale.yaml's
  ``tracking.registered_model_name``; with a shared name only the run's version) and the
  experiment ``<project>`` (MLflow keeps a deleted experiment in its trash until ``mlflow gc``).

The schema registry's subjects stay (PostgreSQL, a few rows per run).
"""

from __future__ import annotations

from collections.abc import Callable

from rtml.project import Project


def delete_run(project: Project, version: tuple[str, str] | None = None) -> list[str]:
    """Delete the run's data; ``version`` is ``(model, version)`` registered by the run."""
    steps: list[tuple[str, Callable[[], str]]] = [
        ("kafka topics", lambda: _topics(project)),
        ("redis keys", lambda: _redis(project)),
        ("opensearch indices", lambda: _indices(project)),
        ("postgres schema", lambda: _schema(project)),
        ("mlflow", lambda: _mlflow(project, version)),
    ]
    done = []
    for what, step in steps:
        try:
            done.append(step())
        except Exception as exc:  # noqa: BLE001 - report and go on with the other steps
            done.append(f"{what} failed: {exc}")
    return done


def _topics(project: Project) -> str:
    from confluent_kafka.admin import AdminClient

    config = project.config.event_log
    servers = getattr(config, "bootstrap_servers", None)
    if servers is None:
        return "no kafka"
    admin = AdminClient({"bootstrap.servers": servers})
    prefix = f"{project.config.project}."
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result()
    return f"{len(names)} kafka topics deleted"


def _redis(project: Project) -> str:
    import redis

    from rtml.backends.online_store.config import for_project

    config = for_project(
        project.config.online_store, project=project.config.project, data_dir=project.data_dir
    )
    url, prefix = getattr(config, "url", None), getattr(config, "key_prefix", None)
    if url is None or prefix is None:
        return "no redis"
    client = redis.Redis.from_url(url)
    try:
        deleted = 0
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(client.delete(*batch))
                batch = []
        if batch:
            deleted += int(client.delete(*batch))
        return f"{deleted} redis keys deleted"
    finally:
        client.close()


def _indices(project: Project) -> str:
    import httpx

    from rtml.backends.dead_letter.config import index_prefix

    index = getattr(project.config.dead_letter, "index", None)
    if index is None:
        return "no index"
    prefix = index.index_prefix or index_prefix(project.config.project)
    reply = httpx.delete(f"{str(index.url).rstrip('/')}/{prefix}-*", timeout=30)
    if reply.status_code not in (200, 404):
        raise RuntimeError(f"{reply.status_code} {reply.text[:200]}")
    return f"indices {prefix}-* deleted"


def _schema(project: Project) -> str:
    import psycopg

    config = project.config.offline_store
    url, namespace = getattr(config, "url", None), getattr(config, "namespace", None)
    if url is None or namespace is None:
        return "no postgres"
    with psycopg.connect(str(url), connect_timeout=10) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {namespace} CASCADE")  # a checked identifier
    return f"postgres schema {namespace} dropped"


def _mlflow(project: Project, version: tuple[str, str] | None) -> str:
    from mlflow.tracking import MlflowClient

    from rtml.backends.tracking import for_project

    config = for_project(project.config.tracking, project=project.config.project, data_dir=project.data_dir)
    uri = config.tracking_uri
    if uri is None:
        return "no mlflow"
    client = MlflowClient(tracking_uri=str(uri))
    out = []
    if version is not None:
        name = config.registered_model_name.replace("{model}", version[0])
        if "{project}" in project.config.tracking.registered_model_name:  # the run's own model
            client.delete_registered_model(name)
            out.append(f"registered model {name} deleted")
        else:  # a name shared with other runs: only this run's version
            client.delete_model_version(name, version[1])
            out.append(f"model version {name}/{version[1]} deleted")
    experiment = client.get_experiment_by_name(project.config.project)
    if experiment is not None:
        client.delete_experiment(experiment.experiment_id)
        out.append(f"experiment {project.config.project} deleted")
    return ", ".join(out) or "nothing in mlflow"
