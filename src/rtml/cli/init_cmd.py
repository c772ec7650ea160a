"""``rtml init DIR``: a new project from the e-commerce example."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from rtml.cli.common import console
from rtml.errors import InvalidInputError
from rtml.project import EXAMPLE_DIR


def init_project(directory: Path, *, force: bool = False) -> Path:
    """Copy the example project into ``directory`` (which must be empty unless ``force``)."""
    if directory.exists() and any(directory.iterdir()) and not force:
        raise InvalidInputError(
            f"{directory} is not empty. Fix: pick a new directory, or pass --force to overwrite"
        )
    shutil.copytree(
        EXAMPLE_DIR,
        directory,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".rtml", "__pycache__", "*.pyc"),
    )
    return directory


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
