"""`rtml replay`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("replay")
    def replay() -> None:
        """Not built yet."""
        raise typer.Exit(1)
