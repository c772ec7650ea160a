"""`rtml apply`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("apply")
    def apply() -> None:
        """Not built yet."""
        raise typer.Exit(1)
