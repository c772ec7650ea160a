"""``rtml serve``: the HTTP server (ingestion, feature reads, predictions, health, metrics)."""

from __future__ import annotations

from pathlib import Path

import typer

from rtml.cli.common import ProjectOption, console, open_project


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        project_dir: Path = ProjectOption,
        host: str | None = typer.Option(
            None, "--host", help="Listen address [rtml.yaml server.host: 127.0.0.1]."
        ),
        port: int | None = typer.Option(None, "--port", help="Listen port [rtml.yaml server.port: 8000]."),
    ) -> None:
        """Serve the project over HTTP: POST /predict/{model} (and /batch) with the model
        version the champion alias points at (followed live), POST /events, feature reads,
        /health, /ready, /metrics and the OpenAPI document at /docs and /openapi.json.
        See docs/serving.md and docs/ingestion.md."""
        from rtml.services.server.runner import serve as run_server

        project = open_project(project_dir)
        settings = project.config.server
        shown = f"http://{host or settings.host}:{port if port is not None else settings.port}"
        console.print(
            f"rtml server of project [bold]{project.config.project}[/] on {shown} (docs: {shown}/docs)"
        )
        models = sorted(project.definitions.models)
        if models:
            alias = project.config.training.promotion.alias
            console.print(
                f"predictions: {', '.join(f'POST {shown}/predict/{m}' for m in models)} "
                f"(the {alias!r} version, checked every {settings.predict.poll_interval_s:g}s)"
            )
        run_server(project, host=host, port=port)
