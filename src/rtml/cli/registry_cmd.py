"""``rtml run registry``: serve rtml's Confluent-compatible schema registry."""

from __future__ import annotations

from pathlib import Path

import typer

from rtml.backends.schema_store.config import ExternalSchemaRegistryConfig
from rtml.cli.common import ProjectOption, console, open_project
from rtml.errors import ConfigError


def run_group(app: typer.Typer) -> typer.Typer:
    """The ``rtml run`` group of ``app``, made on first use (each service adds its command)."""
    for info in app.registered_groups:
        if info.name == "run" and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(help="Run one of rtml's services in the foreground.", no_args_is_help=True)
    app.add_typer(group, name="run")
    return group


def register(app: typer.Typer) -> None:
    @run_group(app).command("registry")
    def registry(
        project_dir: Path = ProjectOption,
        host: str | None = typer.Option(None, "--host", help="Listen address [rtml.yaml: 127.0.0.1]."),
        port: int | None = typer.Option(None, "--port", help="Listen port [rtml.yaml: 8081]."),
    ) -> None:
        """Serve the schema registry (Confluent Schema Registry REST API) on the store
        set in rtml.yaml (schema_registry: embedded SQLite file, or PostgreSQL)."""
        from rtml.services.registry.server import serve

        project = open_project(project_dir)
        config = project.config.schema_registry
        if isinstance(config, ExternalSchemaRegistryConfig):
            raise ConfigError(
                f"schema_registry.type is 'external': clients use {config.url} and rtml runs no "
                "registry. Fix: set schema_registry.type to 'embedded' or 'postgres' to run rtml's"
            )
        shown_host = host or config.host
        shown_port = port if port is not None else config.port
        console.print(
            f"schema registry ({config.type}) of project [bold]{project.config.project}[/] "
            f"on http://{shown_host}:{shown_port}"
        )
        serve(config, base_dir=project.root, host=host, port=port)
