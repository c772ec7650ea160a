"""``rtml init DIR``: a new project from the e-commerce example."""

from __future__ import annotations

from pathlib import Path

import typer

from rtml.cli.common import console
from rtml.project import init_project


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(
        directory: Path = typer.Argument(..., help="Directory to create the project in."),
        force: bool = typer.Option(False, "--force", help="Write into a non-empty directory."),
    ) -> None:
        """Create a project from the e-commerce example (rtml.yaml, schema, definitions)."""
        init_project(directory, force=force)
        console.print(f"[green]Created[/] project in {directory}")
        console.print(f"Next: [bold]rtml apply --project {directory} --dry-run[/]")
