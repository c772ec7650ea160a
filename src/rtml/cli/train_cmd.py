"""``rtml train``: build the training set, split by time, tune XGBoost, evaluate, register.

See docs/training.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from rtml.cli.common import ProjectOption, console, err_console, open_project
from rtml.progress import progress_bar
from rtml.timeutil import from_millis

if TYPE_CHECKING:
    from rtml.core.training.report import TimeWindow
    from rtml.training import TrainOutcome


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        model: Annotated[str, typer.Option("--model", "-m", help="The model to train.")],
        trials: Annotated[
            int | None,
            typer.Option(min=1, help="Tuning trials (default: training.trials in rtml.yaml)."),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print one JSON object instead of tables.")
        ] = False,
        no_register: Annotated[
            bool,
            typer.Option(
                "--no-register", help="Do not log the run or register the model (no registry needed)."
            ),
        ] = False,
        project_dir: Path = ProjectOption,
    ) -> None:
        """Train a model on its point-in-time training set: time split with a label-horizon
        gap, XGBoost tuned by Optuna, metrics on the test split, a baseline without the
        streaming features; then register the version and promote it if it beats the champion."""
        from rtml.training import train as run_training

        project = open_project(project_dir)
        total = trials or project.config.training.trials
        with progress_bar(err_console, enabled=not as_json) as bar:
            task = bar.add_task(f"tuning {model}", total=total)
            outcome = run_training(
                project,
                model,
                trials=trials,
                register=not no_register,
                progress=lambda done, all_: bar.update(task, completed=done, total=all_),
            )
        if as_json:
            typer.echo(json.dumps(outcome.summary(), default=_plain, allow_nan=True))
        else:
            print_outcome(outcome)


def print_outcome(outcome: TrainOutcome) -> None:
    report = outcome.report
    table = Table(title=f"trained {report.model} ({report.trainer} trainer)", title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    lineage = report.lineage
    table.add_row("rows", f"{lineage.rows:,} ({lineage.positives:,} positive, {_share(lineage)})")
    for name in ("train", "validation", "test"):
        table.add_row(f"{name} split", _window(getattr(report, name)))
    table.add_row("gap between splits", f"{report.gap_ms / 60_000:g} min (the label horizon)")
    for metric, value in report.test_metrics.items():
        table.add_row(f"test {metric}", f"{value:.4f}")
    features = ", ".join(outcome.baseline_features) or "none"
    table.add_row(f"test roc_auc without streaming features ({features})", f"{outcome.baseline_auc:.4f}")
    for name, value in report.extra_metrics.items():
        if name != "no_stream_features_auc":
            table.add_row(name, f"{value:.4f}")
    table.add_row("trials", f"{len(report.trials)} (best validation {report.metric} {_best(outcome):.4f})")
    table.add_row("best iteration", str(report.best_iteration))
    for key, value in report.params.items():
        table.add_row(f"  {key}", f"{value:.4g}" if isinstance(value, float) else str(value))
    table.add_row("dataset sha256", lineage.dataset_sha256[:16])
    table.add_row("definitions fingerprint", lineage.definitions_fingerprint)
    table.add_row("seconds", f"{outcome.seconds:.1f}")
    console.print(table)
    if outcome.version is None:
        console.print("not registered (--no-register)")
        return
    decision = outcome.decision
    promoted = decision is not None and decision.promoted
    reason = decision.reason if decision is not None else "no decision"
    verdict = "[green]champion[/green]" if promoted else "[yellow]not champion[/yellow]"
    console.print(f"registered {report.model} version {outcome.version.version}: {verdict} ({reason})")
    for note in outcome.notes:
        console.print(f"note: {note}")


def _window(window: TimeWindow) -> str:
    start = from_millis(window.start_ms).strftime("%Y-%m-%d %H:%M")
    end = from_millis(window.end_ms).strftime("%Y-%m-%d %H:%M")
    return f"{window.rows:,} rows, {window.positives:,} positive, {start} .. {end} UTC"


def _share(lineage: object) -> str:
    rows = getattr(lineage, "rows", 0)
    return f"{getattr(lineage, 'positives', 0) / rows:.1%}" if rows else "-"


def _best(outcome: TrainOutcome) -> float:
    values = [t.value for t in outcome.report.trials if math.isfinite(t.value)]
    if not values:
        return math.nan
    return min(values) if outcome.report.metric == "log_loss" else max(values)


def _plain(value: object) -> object:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
