"""`rtml produce`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("produce")
    def produce() -> None:
        """Not built yet."""
        raise typer.Exit(1)
