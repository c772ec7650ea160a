"""``rtml serve``: the HTTP server (ingestion, feature reads, predictions, health, metrics).

The backend is ``serving`` in rtml.yaml: ``uvicorn`` (this process) or ``ray_serve`` (a Ray
Serve deployment of the same app); both run until Ctrl-C or SIGTERM and shut down cleanly.
"""

from __future__ import annotations

from pathlib import Path

import typer

from rtml.backends.serving.config import RayServeConfig
from rtml.cli.common import ProjectOption, console, open_project


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        project_dir: Path = ProjectOption,
        host: str | None = typer.Option(
            None,
            "--host",
            help="Listen address [rtml.yaml server.host: 127.0.0.1; with serving.type ray_serve: "
            "serving.http_host].",
        ),
        port: int | None = typer.Option(
            None,
            "--port",
            help="Listen port [rtml.yaml server.port: 8000; with serving.type ray_serve: "
            "serving.http_port: 8001].",
        ),
    ) -> None:
        """Serve the project over HTTP: POST /predict/{model} (and /batch) with the model
        version the champion alias points at (followed live), POST /events, feature reads,
        /health, /ready, /metrics and the OpenAPI document at /docs and /openapi.json.
        The backend is serving.type in rtml.yaml: uvicorn (this process) or ray_serve (a Ray
        Serve deployment of the same app, with replicas). Runs until Ctrl-C.
        See docs/serving.md, docs/ray-serve.md and docs/ingestion.md."""
        from rtml.backends.registry import open_backend

        project = open_project(project_dir)
        config = project.config.serving
        backend = open_backend("serving", config)
        if isinstance(config, RayServeConfig):
            where = config.address or "a local Ray"
            console.print(
                f"starting Ray Serve on {where} ({_replicas(config)}); this takes a few seconds ..."
            )
        try:
            url = backend.start(project, host=host, port=port)
            console.print(
                f"rtml server of project [bold]{project.config.project}[/] ({config.type}) on {url} "
                f"(docs: {url}/docs); Ctrl-C to stop"
            )
            models = sorted(project.definitions.models)
            if models:
                alias = project.config.training.promotion.alias
                poll = project.config.server.predict.poll_interval_s
                console.print(
                    f"predictions: {', '.join(f'POST {url}/predict/{m}' for m in models)} "
                    f"(the {alias!r} version, checked every {poll:g}s)"
                )
            backend.wait()
            console.print("stopping ...")
        finally:
            backend.stop()


def _replicas(config: RayServeConfig) -> str:
    if config.min_replicas is None and config.max_replicas is None:
        return f"{config.num_replicas} replica(s)"
    high = config.max_replicas or max(config.min_replicas or 1, config.num_replicas)
    return f"autoscaling {config.min_replicas or 1}..{high} replicas"
