"""``rtml demo --scale``: the same loop on the scale-out backends (docs/demo.md, "At scale").

The project stage writes the example's ``rtml.scale.yaml`` as the demo project's
``rtml.yaml`` under a project name of its own (``ecommerce_<UTC yyyymmddhhmmss>_<4 hex>``):
the name makes the run's Kafka topics, Redis keys, PostgreSQL rows, schema subjects, OpenSearch
indices and MLflow experiment its own, so a run starts from an empty pipeline without deleting
anything. Server addresses come from ``rtml.scale.yaml`` and may be overridden by the usual
``RTML_*`` variables (``RTML_EVENT_LOG__BOOTSTRAP_SERVERS``, ...).

The registered model is named after the rtml model (``purchase_1h``) and is global on the
MLflow server, so runs share it: the demo registers a new version and, when the promotion
policy kept an older run's champion, promotes its own version by hand (``force``) so that it
serves the model it just trained.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from rtml.apply import apply_project
from rtml.config import CONFIG_FILE
from rtml.demo.runner import DemoContext
from rtml.demo.serving import free_port
from rtml.errors import BackendUnavailableError
from rtml.project import EXAMPLE_DIR, Project, init_project
from rtml.status import backends

SCALE_FILE = "rtml.scale.yaml"
GATEWAY_READY_S = 30.0
# Which type each role must have at scale (the summary's "backends" shows the real ones).
SCALE_BACKENDS = {
    "event_log": "kafka",
    "schema_registry": "postgres",
    "dead_letter": "kafka",
    "offline_store": "postgres",
    "online_store": "redis",
    "trainer": "ray",
    "tracking": "mlflow_server",
    "serving": "ray_serve",
    "dead_letter_index": "opensearch",
    "gateway": "nginx",
}


def run_name(now: datetime | None = None) -> str:
    """``ecommerce_<yyyymmddhhmmss>_<4 hex>``: the project name of one scale run."""
    moment = now or datetime.now(UTC)
    return f"ecommerce_{moment:%Y%m%d%H%M%S}_{secrets.token_hex(2)}"


def write_scale_config(directory: Path, name: str) -> Path:
    """The example's ``rtml.scale.yaml`` as ``<directory>/rtml.yaml``, with ``project: <name>``
    and the offline store in the PostgreSQL schema ``<name>`` (its default schema is shared by
    every project on the server)."""
    import yaml

    settings = yaml.safe_load((EXAMPLE_DIR / SCALE_FILE).read_text(encoding="utf-8"))
    settings["project"] = name
    settings.setdefault("offline_store", {})["namespace"] = name
    header = f"# rtml demo --scale: {EXAMPLE_DIR.name}/{SCALE_FILE} for the run {name}\n"
    path = directory / CONFIG_FILE
    path.write_text(header + yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return path


def scale_project_stage(ctx: DemoContext) -> None:
    """Make the demo project from the example with the scale settings and a new name; apply."""
    directory = ctx.options.directory
    if not (directory / "features.py").is_file():
        init_project(directory, force=True)
    name = run_name()
    write_scale_config(directory, name)
    project = Project.load(directory)
    if project.data_dir.exists():
        shutil.rmtree(project.data_dir)  # logs and Ray's files of an earlier run
    plan = apply_project(project, dry_run=False)
    ctx.project = project
    ctx.summary.backends = backends(project)
    ctx.console.print(
        f"project {name} (scale): applied {len(plan)} definitions; "
        + ", ".join(f"{role} {kind}" for role, kind in ctx.summary.backends.items())
    )
    if ctx.options.cleanup:
        ctx.cleanups.append(lambda: cleanup(ctx, project))


def index_stage(ctx: DemoContext) -> None:
    """Run the dead-letter indexer until the topic is drained; fill
    dead_letters.{topic,indexed}: the letters in the topic and in OpenSearch."""
    from rtml.backends.dead_letter.config import KafkaDeadLetterConfig, for_project
    from rtml.backends.dead_letter.opensearch import OpenSearchDeadLetterSink
    from rtml.demo.logs import file_logger
    from rtml.services.indexer.service import DeadLetterIndexer

    project = ctx.require_project()
    stats = DeadLetterIndexer(project, logger=file_logger(project, "indexer")).run(until_idle=True)
    config = for_project(
        project.config.dead_letter, project=project.config.project, data_dir=project.data_dir
    )
    assert isinstance(config, KafkaDeadLetterConfig) and config.index is not None  # noqa: S101
    with OpenSearchDeadLetterSink(config.index) as index:
        index.flush()
        indexed = index.count()
    ctx.summary.dead_letters.topic = ctx.summary.events.invalid
    ctx.summary.dead_letters.indexed = indexed
    ctx.console.print(
        f"indexer: {stats.letters:,} dead letters copied from {config.topic} to OpenSearch "
        f"({config.index.index_prefix}-*): {indexed:,} searchable, the topic holds "
        f"{ctx.summary.events.invalid:,}"
    )


def own_champion(ctx: DemoContext) -> None:
    """Make the version this run registered the champion (the registered model is shared
    with earlier runs, whose champion the policy may have kept)."""
    from rtml.models import promote

    outcome = ctx.artifacts.get("train_outcome")
    if outcome is None or outcome.version is None:
        return
    if outcome.decision is not None and outcome.decision.promoted:
        return
    project = ctx.require_project()
    promote(project, outcome.report.model, outcome.version.version, force=True)
    ctx.console.print(
        f"version {outcome.version.version} promoted by hand: the demo serves the model it trained "
        f"(the policy kept version {outcome.champion_version}, an earlier run's)"
    )


@dataclass
class Gateway:
    """NGINX in front of the server (``rtml gateway``'s configuration), on a free port."""

    process: subprocess.Popen[bytes]
    url: str
    api_key: str
    conf: Path

    @classmethod
    def start(cls, project: Project, upstream: str) -> Gateway:
        from rtml.services.gateway.nginx import GatewayOptions, write

        nginx = nginx_binary()
        key = secrets.token_hex(24)
        port = free_port()
        conf = project.data_dir / "gateway" / "nginx.conf"
        server = project.config.server
        options = GatewayOptions(
            conf=conf,
            run_dir=conf.parent / "run",
            upstreams=(upstream,),
            listen=f"127.0.0.1:{port}",
            api_keys=(key,),
            predict_body_bytes=server.predict.max_body_bytes,
            events_body_bytes=server.ingest.max_body_bytes,
            workers="1",
            retry_after_s=server.ingest.retry_after_s,
        )
        write(options)
        process = subprocess.Popen(  # noqa: S603 - the configured nginx binary, our arguments
            [nginx, "-c", str(conf.resolve()), "-e", str((conf.parent / "startup.log").resolve())]
            + ["-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        return cls(process=process, url=f"http://127.0.0.1:{port}", api_key=key, conf=conf)

    def wait_up(self, timeout_s: float = GATEWAY_READY_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BackendUnavailableError(
                    f"NGINX exited with code {self.process.returncode}. Fix: read "
                    f"{self.conf.parent / 'startup.log'}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise BackendUnavailableError(f"NGINX at {self.url} did not answer within {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def nginx_binary() -> str:
    import os

    for candidate in (os.environ.get("RTML_NGINX"), shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and Path(candidate).is_file():
            return candidate
    raise BackendUnavailableError(
        "rtml demo --scale puts NGINX in front of Ray Serve, but no nginx binary was found. Fix: "
        "`bash scripts/services.sh start` installs it, or set RTML_NGINX to an nginx binary"
    )


def cleanup(ctx: DemoContext, project: Project) -> None:
    """--cleanup: delete what this run created on the servers (see docs/demo.md)."""
    from rtml.demo.scale_cleanup import delete_run

    outcome = ctx.artifacts.get("train_outcome")
    version = None
    if outcome is not None and outcome.version is not None:
        version = (outcome.report.model, outcome.version.version)
    done = delete_run(project, version)
    ctx.console.print("cleanup: " + ", ".join(done))
