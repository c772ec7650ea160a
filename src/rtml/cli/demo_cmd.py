"""``rtml demo``: the whole loop end to end, with a summary table and JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rtml.cli.common import console
from rtml.datagen.ecommerce import DEFAULT_DIRTY_RATE


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        directory: Annotated[
            Path,
            typer.Option("--dir", help="Demo project directory (made from the example if missing)."),
        ] = Path("rtml-demo"),
        events: Annotated[int, typer.Option("--events", min=1000, help="Events to generate.")] = 200_000,
        seed: Annotated[int, typer.Option(min=0, help="Random seed of the generator.")] = 42,
        days: Annotated[float, typer.Option(help="Simulated days of history.")] = 14.0,
        dirty_rate: Annotated[
            float, typer.Option("--dirty-rate", min=0.0, max=0.5, help="Share of dirty lines.")
        ] = DEFAULT_DIRTY_RATE,
        live_seconds: Annotated[
            float,
            typer.Option("--live-seconds", min=0.0, help="Wall seconds of the live phase (0: none)."),
        ] = 30.0,
        live_hours: Annotated[
            float,
            typer.Option(
                "--live-hours",
                min=2.0,
                help="Simulated hours of live traffic (the simulated clock runs this fast).",
            ),
        ] = 24.0,
        trials: Annotated[int, typer.Option("--trials", min=1, help="Tuning trials of the train stage.")] = 8,
        scale: Annotated[
            bool,
            typer.Option(
                "--scale",
                help="Run on the scale-out backends (examples/ecommerce/rtml.scale.yaml, servers of "
                "scripts/services.sh; RTML_* variables override addresses) under a new project name.",
            ),
        ] = False,
        cleanup: Annotated[
            bool,
            typer.Option("--cleanup", help="With --scale: delete what the run created on the servers."),
        ] = False,
        summary: Annotated[
            Path | None, typer.Option("--summary", dir_okay=False, help="Write the summary JSON here.")
        ] = None,
    ) -> None:
        """Run the whole loop: project -> generate -> ingest -> validate -> features -> train (the
        server starts meanwhile) -> serve -> live (events keep arriving on a simulated clock while
        every cart gets a prediction) -> monitor (labels, online AUC, drift, alerts) -> report
        (<dir>/report.html). With --scale every role runs on its scale-out backend (Kafka,
        PostgreSQL, OpenSearch, Redis, Ray, MLflow server, Ray Serve behind NGINX). Prints a
        summary table; --summary writes the JSON with the keys
        listed in docs/demo.md."""
        from rtml.demo.runner import DemoOptions, run_demo
        from rtml.demo.stages import SCALE_STAGES, STAGES, summary_table

        if cleanup and not scale:
            from rtml.errors import InvalidInputError

            raise InvalidInputError(
                "--cleanup deletes what a --scale run created on the servers; this run has no --scale. "
                "Fix: pass --scale too, or drop --cleanup"
            )
        options = DemoOptions(
            directory=directory,
            events=events,
            seed=seed,
            days=days,
            dirty_rate=dirty_rate,
            live_seconds=live_seconds,
            live_hours=live_hours,
            trials=trials,
            scale=scale,
            cleanup=cleanup,
        )
        result = run_demo(options, SCALE_STAGES if scale else STAGES, console)
        console.print(summary_table(result.rows()))
        console.print("stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.stages.items()))
        console.print(f"report -> {directory / 'report.html'}")
        if summary is not None:
            result.write(summary)
            console.print(f"summary -> {summary}")
