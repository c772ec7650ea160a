"""``rtml status``: where a project stands -- backends, the engine's checkpoint and
watermark, the models' champions, ``rtml up``'s components (and, with ``--counts``, the
exact event counts). Read-only; see :mod:`rtml.status`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from rtml.cli.common import ProjectOption, console, err_console, open_project


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(
        project_dir: Path = ProjectOption,
        counts: Annotated[
            bool,
            typer.Option(
                "--counts", help="Also count valid, invalid and duplicate events (reads every topic in full)."
            ),
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    ) -> None:
        """Where a project stands: the backend of each role, the engine's checkpoint and
        watermark (and views to backfill), each model's champion and test metrics, and the
        components of `rtml up`. Starts nothing. Exits 1 when a section could not be read
        (a store down): the others are still shown."""
        from rtml.status import failed_sections, project_status

        project = open_project(project_dir)
        found = project_status(project, counts=counts)
        if as_json:
            typer.echo(json.dumps(found, indent=2, sort_keys=True, default=str))
        else:
            _print(found)
        failed = failed_sections(found)
        if failed:
            err_console.print(f"[red]could not read: {', '.join(failed)}")
            raise typer.Exit(1)


def _print(found: dict[str, Any]) -> None:
    project = found["project"]
    if "error" not in project:
        console.print(
            f"project [bold]{project['name']}[/] at {project['root']}: "
            f"{len(project['feature_views'])} feature views, models {', '.join(project['models']) or '-'}"
        )
    for name, section in found.items():
        if name == "project":
            continue
        table = Table(title=name, title_justify="left", show_header=False)
        table.add_column("key")
        table.add_column("value")
        if isinstance(section, dict) and "error" in section:
            table.add_row("[red]error", section["error"])
        else:
            for key, value in _flat(section):
                shown = _ago(value) if key.endswith("_s_ago") and value is not None else _show(value)
                table.add_row(key, shown)
        console.print(table)


def _flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        out: list[tuple[str, Any]] = []
        for key, inner in value.items():
            out.extend(_flat(inner, f"{prefix}{key}."))
        return out
    return [(prefix.rstrip(".") or "-", value)]


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:,.1f} {unit} ago"
    return f"{seconds:.1f} s ago"


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return "-"
    return str(value)
