"""Options and helpers shared by the sub-commands."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from rtml.project import Project

console = Console()
err_console = Console(stderr=True)

ProjectOption = typer.Option(
    Path("."),
    "--project",
    "-p",
    help="Project directory (holds rtml.yaml and the definition files).",
    envvar="RTML_PROJECT_DIR",
    show_default=True,
)


def open_project(directory: Path) -> Project:
    return Project.load(directory)
