"""``rtml serve``: the HTTP server (event ingestion, health, metrics)."""

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
        """Serve the project over HTTP: POST /events, /health, /metrics and the OpenAPI
        document at /docs and /openapi.json. See docs/ingestion.md."""
        from rtml.services.server.runner import serve as run_server

        project = open_project(project_dir)
        settings = project.config.server
        shown = f"http://{host or settings.host}:{port if port is not None else settings.port}"
        console.print(
            f"rtml server of project [bold]{project.config.project}[/] on {shown} (docs: {shown}/docs)"
        )
        run_server(project, host=host, port=port)
