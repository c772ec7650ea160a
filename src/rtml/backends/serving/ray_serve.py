"""The ``ray_serve`` serving backend: the server app as a Ray Serve deployment.

Each replica of the deployment builds the same ASGI app as ``uvicorn`` does
(:func:`~rtml.services.server.app.create_app`: Ray Serve's ``@serve.ingress``, the app
built in the replica), so one predictor class, one ``ScoringService`` and one HTTP API
(``/predict/{model}``, ``/batch``, ``/ready``, ``/health``, ``/metrics``, ``/events``,
``/features``, the OpenAPI document) whichever backend serves. What Ray adds:

- **where**: ``serving.address`` unset starts a local Ray in this process (no dashboard,
  its session files under ``<data_dir>/ray``, workers' output kept out of the console),
  shut down by :meth:`RayServeServing.stop`; ``"auto"``, ``"host:6379"`` or
  ``"ray://host:10001"`` joins a running cluster, where ``stop`` deletes only rtml's
  application;
- **HTTP**: Ray Serve's proxy on ``serving.http_host:http_port`` (cluster-wide), which
  passes each request to a replica;
- **replicas**: ``num_replicas`` fixed, or autoscaling between ``min_replicas`` and
  ``max_replicas`` on ``target_ongoing_requests`` per replica when either is set; a
  replica is sent at most ``max_ongoing_requests`` requests at once (the rest wait in
  Ray Serve's queue).

Each replica follows the champion alias itself (its own ``ModelHolder`` polling the
registry), so the registry must be one every replica can read: the MLflow SQLite file
of the project on one machine, or an MLflow server. See docs/ray-serve.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import ray
from fastapi import FastAPI
from ray import serve

from rtml.backends.ray_support import check_reachable, first_line, quiet_loggers
from rtml.backends.serving.base import base_url, wait_for_signal, wait_healthy
from rtml.backends.serving.config import RayServeConfig
from rtml.config import RtmlConfig
from rtml.errors import BackendUnavailableError, ConfigError
from rtml.project import Project

DEPLOYMENT = "rtml_server"
HEALTHY_TIMEOUT_S = 60.0
# Ray's session directory holds Unix sockets (at most 107 bytes of path): a temp dir longer
# than this leaves no room for ``session_<date>_<pid>/sockets/plasma_store``.
MAX_TEMP_DIR_LEN = 40
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*:")
_QUIET_LOGGERS = ("ray", "ray.serve", "ray._private.authentication.authentication_token_setup")
# Serve's own components (controller, proxy, replicas' Serve logger): warnings only, and no
# per-request access line (the app writes one JSON line per request itself).
_SERVE_LOGGING = {"log_level": "WARNING", "enable_access_log": False}


@serve.ingress()
class RtmlServer:
    """One replica: the project's server app, built in the replica (``create_app``)."""

    def __init__(self, root: str, config: RtmlConfig) -> None:
        self.project = Project(root=Path(root), config=config)

    def __serve_build_asgi_app__(self) -> FastAPI:
        from rtml.services.server.app import create_app

        return create_app(self.project)


def deployment_options(config: RayServeConfig) -> dict[str, Any]:
    """The Ray Serve deployment options of ``serving`` in rtml.yaml: fixed replicas, or
    autoscaling when ``min_replicas`` or ``max_replicas`` is set."""
    options: dict[str, Any] = {"max_ongoing_requests": config.max_ongoing_requests}
    if config.min_replicas is None and config.max_replicas is None:
        options["num_replicas"] = config.num_replicas
        return options
    low = config.min_replicas or 1
    high = config.max_replicas or max(low, config.num_replicas)
    if low > high:
        raise ConfigError(
            f"serving.min_replicas ({low}) is above serving.max_replicas ({high}). "
            "Fix: set min_replicas <= max_replicas"
        )
    options["autoscaling_config"] = {
        "min_replicas": low,
        "max_replicas": high,
        "initial_replicas": min(max(config.num_replicas, low), high),
        "target_ongoing_requests": config.target_ongoing_requests,
    }
    return options


def ray_temp_dir(data_dir: Path) -> Path:
    """Where a local Ray keeps its session (logs, sockets): ``<data_dir>/ray``, or, when that
    path is too long for Ray's Unix sockets, ``<tmp>/rtml-ray-<hash of data_dir>``."""
    wanted = data_dir.resolve() / "ray"
    if len(str(wanted).encode()) <= MAX_TEMP_DIR_LEN:
        return wanted
    digest = hashlib.sha256(str(wanted).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"rtml-ray-{digest}"


class RayServeServing:
    def __init__(self, config: RayServeConfig | None = None) -> None:
        self.config = config or RayServeConfig()
        self.url: str | None = None
        self.app_name: str | None = None
        self.temp_dir: Path | None = None  # the local Ray's session files (None: a cluster's)
        self._started_ray = False

    def start(self, project: Project, *, host: str | None = None, port: int | None = None) -> str:
        if self.app_name is not None:
            raise RuntimeError("already serving; call stop() first")
        host = host or self.config.http_host
        port = port if port is not None else self.config.http_port
        options = deployment_options(self.config)
        app_name = f"rtml-{project.config.project}"
        self._connect(project)
        logging_config = dict(_SERVE_LOGGING)
        if self._started_ray:
            logging_config["logs_dir"] = str(project.data_dir.resolve() / "ray-serve-logs")
        deployment = serve.deployment(name=DEPLOYMENT, **options)(RtmlServer)
        self.app_name = app_name
        try:
            with _quiet():
                serve.start(http_options={"host": host, "port": port}, logging_config=logging_config)
                serve.run(
                    deployment.bind(str(project.root), project.config),
                    name=app_name,
                    route_prefix="/",
                    logging_config=logging_config,
                )
        except Exception as exc:  # Ray raises RuntimeError, RayServeException, ActorDiedError...
            self.stop()
            reason = _reason(exc)
            fix = (
                f"free {host}:{port}, or pick another with --port or serving.http_port in rtml.yaml"
                if "Failed to bind" in reason
                else f"read the replica logs under {self._logs_hint(project)}; check that `rtml serve` "
                "works with serving.type: uvicorn"
            )
            message = f"Ray Serve could not deploy {app_name!r}: {reason}. Fix: {fix}"
            raise BackendUnavailableError(message) from None
        url = base_url(host, port)
        if not wait_healthy(url, HEALTHY_TIMEOUT_S):
            self.stop()
            raise BackendUnavailableError(
                f"Ray Serve deployed {app_name!r} but nothing answers at {url}/health. Fix: Ray Serve's "
                "HTTP address is cluster-wide and set by the first application: on a shared cluster use "
                "its address in serving.http_host/http_port, or free the port"
            )
        self.url = url
        return url

    def wait(self) -> None:
        wait_for_signal(ray.is_initialized)

    def stop(self) -> None:
        """Delete rtml's application (its replicas close their apps: the prediction log is
        flushed), and shut Serve and Ray down when this object started Ray."""
        app_name, self.app_name, self.url = self.app_name, None, None
        if not ray.is_initialized():
            self._started_ray = False
            return
        with _quiet(), contextlib.suppress(Exception):  # best effort: Ray may be half down
            if app_name is not None:
                serve.delete(app_name)  # waits for the replicas' graceful shutdown
        if self._started_ray:  # Serve's controller and proxy end with the local Ray
            ray.shutdown()
            self._started_ray = False

    def _connect(self, project: Project) -> None:
        """Start a local Ray, or join the configured cluster (a no-op if Ray is up)."""
        if ray.is_initialized():
            return
        address = self.config.address
        if address is not None and address != "auto":
            check_reachable(address, "serving.address")
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.WARNING,
            "log_to_driver": False,
            "ignore_reinit_error": True,
        }
        if address is None:
            self.temp_dir = ray_temp_dir(project.data_dir)
            self.temp_dir.mkdir(parents=True, exist_ok=True)
            kwargs.update(num_cpus=os.cpu_count() or 1, _temp_dir=str(self.temp_dir))
        else:
            kwargs["address"] = address
        with _quiet():
            try:
                ray.init(**kwargs)
            except Exception as exc:  # Ray raises ConnectionError, RuntimeError, TimeoutError...
                where = "start a local Ray" if address is None else f"join the Ray cluster at {address!r}"
                fix = (
                    "check `ray start --head` works on this machine, or set serving.type: uvicorn"
                    if address is None
                    else "start the cluster (`ray start --head`), or fix serving.address"
                )
                raise BackendUnavailableError(f"could not {where}: {first_line(exc)}. Fix: {fix}") from None
        self._started_ray = address is None

    def _logs_hint(self, project: Project) -> str:
        if self.temp_dir is not None:
            return f"{self.temp_dir}/session_latest/logs and {project.data_dir / 'ray-serve-logs'}"
        return "the Ray cluster's session_latest/logs"


def _quiet() -> contextlib.AbstractContextManager[None]:
    """No Ray banners or Serve INFO lines on the console (errors still reach the caller)."""
    return quiet_loggers(_QUIET_LOGGERS, logging.ERROR)


def _reason(error: object) -> str:
    """The line of a Ray error that says what failed: Ray's task errors hold a remote
    traceback whose last line is the original exception (``RuntimeError: Failed to bind ...``)."""
    lines = [_ANSI.sub("", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line]
    if lines and _EXCEPTION_LINE.match(lines[-1]):
        return lines[-1]
    return lines[0] if lines else type(error).__name__
