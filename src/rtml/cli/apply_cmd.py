"""``rtml apply``: load and check the definitions, show the plan, and record it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from rtml.apply import apply_project
from rtml.cli.common import ProjectOption, console, open_project
from rtml.core.plan import PlanItem

_COLOURS = {"new": "green", "changed": "yellow", "unchanged": "dim", "removed": "red"}


def plan_table(plan: list[PlanItem]) -> Table:
    table = Table(title="Plan", title_justify="left")
    for column in ("kind", "name", "change", "fingerprint", "what"):
        table.add_column(column)
    for item in plan:
        colour = _COLOURS[item.change]
        table.add_row(item.kind, item.name, f"[{colour}]{item.change}[/]", item.fingerprint[:8], item.detail)
    return table


def register(app: typer.Typer) -> None:
    @app.command("apply")
    def apply(
        project_dir: Path = ProjectOption,
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Only check the definitions and print the plan."
        ),
    ) -> None:
        """Check the project's definitions and print the plan; without --dry-run, create
        the topics and record the definitions' fingerprints."""
        project = open_project(project_dir)
        plan = apply_project(project, dry_run=dry_run)
        console.print(plan_table(plan))
        changed = [i for i in plan if i.change == "changed" and i.kind in {"FeatureView", "Source"}]
        if changed:
            names = ", ".join(i.name for i in changed)
            console.print(
                f"[yellow]Changed feature definitions ({names}): stored tiles are stale; "
                "run `rtml backfill` after apply.[/]"
            )
        verb = "Would apply" if dry_run else "Applied"
        console.print(f"{verb} {len(plan)} definitions of project [bold]{project.config.project}[/].")
