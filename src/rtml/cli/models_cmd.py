"""``rtml models``: the registered versions of a model, promotion and rollback of its champion.

* ``rtml models list --model M [--json]``
* ``rtml models promote --model M --version V [--force]``
* ``rtml models rollback --model M``

See docs/model-registry.md.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from rtml.cli.common import ProjectOption, console, err_console, open_project

ModelOption = typer.Option("--model", "-m", help="The model (its name in the definitions).")
METRICS = ("roc_auc", "pr_auc", "log_loss", "calibration_error")


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Registered model versions: list them, promote one to champion, roll back.", no_args_is_help=True
    )
    app.add_typer(group, name="models")

    @group.command("list")
    def list_cmd(
        model: Annotated[str, ModelOption],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
        project_dir: Path = ProjectOption,
    ) -> None:
        """Every registered version of a model, newest first, with its test metrics and aliases,
        and the history of the champion alias."""
        from rtml.backends.tracking import open_registry

        project = open_project(project_dir)
        alias = project.config.training.promotion.alias
        registry = open_registry(project)
        try:
            versions = registry.versions(model)
            history = registry.alias_history(model, alias)
        finally:
            registry.close()
        if as_json:
            payload = {
                "model": model,
                "alias": alias,
                "champion": next((v.version for v in versions if alias in v.aliases), None),
                "versions": [_version_json(v) for v in versions],
                "history": [vars(change) for change in history],
            }
            typer.echo(json.dumps(payload, indent=2, sort_keys=True))
            return
        if not versions:
            err_console.print(f"model {model!r} has no registered version yet (train it with `rtml train`)")
            return
        table = Table(title=f"versions of {model} (newest first)", title_justify="left")
        for column in ("version", "aliases", "created (UTC)", *METRICS, "test window (UTC)", "run"):
            table.add_column(column, justify="right" if column in METRICS else "left")
        for v in versions:
            table.add_row(
                v.version,
                ", ".join(v.aliases) or "-",
                _time(v.created_ms),
                *(f"{v.metrics[m]:.4f}" if m in v.metrics else "-" for m in METRICS),
                _window(v.tags.get("rtml.test_window")),
                v.run_id[:12],
            )
        console.print(table)
        if history:
            console.print(f"history of {alias}:")
            for change in history:
                was = f"v{change.previous}" if change.previous else "none"
                console.print(
                    f"  {_time(change.at_ms)}  {change.action:<8} {was} -> v{change.version}  {change.reason}"
                )

    @group.command("promote")
    def promote_cmd(
        model: Annotated[str, ModelOption],
        version: Annotated[str, typer.Option("--version", "-v", help="The version to make champion.")],
        force: Annotated[
            bool, typer.Option("--force", help="Promote even if it does not beat the champion by the margin.")
        ] = False,
        project_dir: Path = ProjectOption,
    ) -> None:
        """Make a version the champion (what serving follows) if it beats the current one on the
        same test window by training.promotion.margin; --force skips the check."""
        from rtml.models import promote

        decision = promote(open_project(project_dir), model, version, force=force)
        if decision.promoted:
            was = f"v{decision.previous}" if decision.previous else "none"
            console.print(f"{model}: {decision.alias} {was} -> v{decision.version} ({decision.reason})")
            return
        if decision.action == "none" and decision.previous == decision.version:
            console.print(f"{model}: {decision.reason}")
            return
        err_console.print(
            f"{model}: v{decision.version} not promoted: {decision.reason}. "
            "Fix: pass --force to promote it anyway"
        )
        raise typer.Exit(1)

    @group.command("rollback")
    def rollback_cmd(model: Annotated[str, ModelOption], project_dir: Path = ProjectOption) -> None:
        """Move the champion back to the version that held it before the current one."""
        from rtml.models import rollback

        decision = rollback(open_project(project_dir), model)
        console.print(f"{model}: {decision.alias} v{decision.previous} -> v{decision.version} (rollback)")


def _version_json(v: Any) -> dict[str, Any]:
    return {
        "version": v.version,
        "run_id": v.run_id,
        "created_ms": v.created_ms,
        "aliases": list(v.aliases),
        "metrics": dict(v.metrics),
        "tags": dict(v.tags),
    }


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _window(text: str | None) -> str:
    try:
        start, end = (int(part) for part in (text or "").split("/"))
    except ValueError:
        return "-"
    return f"{_time(start)} .. {_time(end)}"
