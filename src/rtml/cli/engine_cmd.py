"""``rtml run engine`` (the feature engine), ``rtml backfill`` and ``rtml materialize``."""

from __future__ import annotations

import threading
from pathlib import Path

import typer
from rich.table import Table

from rtml.cli.common import ProjectOption, console, open_project
from rtml.cli.registry_cmd import run_group
from rtml.cli.validator_cmd import stop_on_signals


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def register(app: typer.Typer) -> None:
    @run_group(app).command("engine")
    def engine(
        project_dir: Path = ProjectOption,
        until_idle: bool = typer.Option(
            False, "--until-idle", help="Apply what is in the valid topic, then exit."
        ),
        metrics_port: int | None = typer.Option(
            None, "--metrics-port", help="Serve Prometheus /metrics on 127.0.0.1:PORT."
        ),
    ) -> None:
        """Compute the feature views in streaming: valid events from <project>.events.valid
        update each key's state in the online store and are appended to the offline store;
        exactly once across crashes (checkpoints in the online store). JSON log lines go to
        stderr. See docs/engine.md."""
        from rtml.services.engine import EngineService

        project = open_project(project_dir)
        service = EngineService(project)
        if metrics_port is not None:
            service.metrics.serve(metrics_port)
        stop = threading.Event()
        with stop_on_signals(stop):
            stats = service.run(until_idle=until_idle, stop=stop)
        table = Table(title=f"engine {service.settings.group}: this run ({stats.stopped_by})")
        table.add_column("what")
        table.add_column("value", justify="right")
        rows = [
            ("feature views", f"{stats.views}"),
            ("events applied", f"{stats.events:,}"),
            ("late (behind the watermark)", f"{stats.late:,}"),
            ("too old for online state", f"{sum(stats.dropped.values()):,}"),
            ("new offline rows", f"{stats.offline_new:,}"),
            ("replayed and skipped", f"{stats.skipped:,}"),
            ("state blobs written", f"{stats.keys_written:,}"),
            ("checkpoints", f"{stats.checkpoints:,}"),
            ("events/s while busy", f"{stats.events_per_s:,.0f}"),
            ("freshness p50", _ms(stats.freshness_p50_ms)),
            ("freshness p99", _ms(stats.freshness_p99_ms)),
        ]
        for name, value in rows:
            table.add_row(name, value)
        console.print(table)
        restored = "resumed from a checkpoint" if stats.restored else "started from empty state"
        console.print(f"{restored}; {stats.batches:,} batches, {stats.seconds:.1f} s in all")

    def _report(title: str, stats: object) -> None:
        from rtml.services.engine.rebuild import BackfillStats

        assert isinstance(stats, BackfillStats)
        table = Table(title=title)
        table.add_column("view")
        table.add_column("how")
        table.add_column("state blobs written", justify="right")
        for name in [*stats.rebuilt, *stats.kept]:
            how = "rebuilt from the offline store" if name in stats.rebuilt else "kept, caught up"
            table.add_row(name, how, f"{stats.keys_written.get(name, 0):,}")
        console.print(table)
        console.print(
            f"{stats.events_read:,} offline events read; {stats.caught_up:,} valid records past the "
            f"old checkpoint caught up ({stats.appended:,} new offline rows); fresh checkpoint at "
            f"{stats.positions or 'the start'}; {stats.seconds:.1f} s"
        )

    @app.command("backfill")
    def backfill_cmd(
        project_dir: Path = ProjectOption,
        view: list[str] = typer.Option(
            [], "--view", help="A feature view to rebuild (repeat for several) [default: all]."
        ),
    ) -> None:
        """Rebuild feature views' online state from the offline store's events, and write a
        fresh engine checkpoint: run it after changing a view's definition (the engine
        refuses state of other definitions). Stop the engine first. See docs/engine.md."""
        from rtml.services.engine import backfill

        project = open_project(project_dir)
        stats = backfill(project, view or None)
        _report("backfill", stats)

    @app.command("materialize")
    def materialize_cmd(project_dir: Path = ProjectOption) -> None:
        """Fill the online store from the offline store (cold start: a new or emptied online
        store), every feature view, with a fresh engine checkpoint. Stop the engine first."""
        from rtml.services.engine import materialize

        project = open_project(project_dir)
        stats = materialize(project)
        _report("materialize", stats)
