"""`rtml init`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init() -> None:
        """Not built yet."""
        raise typer.Exit(1)
