"""``rtml run validator`` (the validation service) and ``rtml validate`` (a file, offline)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import typer
from rich.table import Table

from rtml.cli.common import ProjectOption, console, open_project
from rtml.cli.registry_cmd import run_group

TOP_REASONS = 10


def outcome_table(title: str, rows: Mapping[str, int], by_code: Mapping[str, int]) -> Table:
    table = Table(title=title, min_width=len(title) + 4)
    table.add_column("outcome")
    table.add_column("events", justify="right")
    for name, count in rows.items():
        table.add_row(name, f"{count:,}")
    if by_code:
        table.add_section()
        table.add_row("[bold]top invalid reasons[/]", "")
        for code, count in list(by_code.items())[:TOP_REASONS]:
            table.add_row(f"  {code}", f"{count:,}")
    return table


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (the batch in hand is finished and handed over); a
    second one ends the process at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signum, signal.SIG_DFL)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def register(app: typer.Typer) -> None:
    @run_group(app).command("validator")
    def validator(
        project_dir: Path = ProjectOption,
        until_idle: bool = typer.Option(
            False, "--until-idle", help="Process what is in the raw topic, then exit."
        ),
        metrics_port: int | None = typer.Option(
            None, "--metrics-port", help="Serve Prometheus /metrics on 127.0.0.1:PORT."
        ),
        group: str | None = typer.Option(
            None, "--group", help="Kafka consumer group [rtml.yaml validator.group: rtml-validator]."
        ),
        instance_id: str | None = typer.Option(
            None,
            "--instance-id",
            help="Kafka static membership id of this copy: a restart with the same id gets "
            "its partitions back at once.",
        ),
    ) -> None:
        """Validate the raw topic: valid events to <project>.events.valid, duplicates to
        <project>.events.duplicates, invalid ones to the dead-letter sink; each raw event
        exactly once, across crashes. JSON log lines go to stderr. See docs/validator.md."""
        from rtml.services.validator import ValidatorService

        project = open_project(project_dir)
        settings = project.config.validator
        if instance_id is not None:
            settings = settings.model_copy(update={"instance_id": instance_id})
        service = ValidatorService(project, group=group, settings=settings)
        if metrics_port is not None:
            service.metrics.serve(metrics_port)
        stop = threading.Event()
        with stop_on_signals(stop):
            stats = service.run(until_idle=until_idle, stop=stop)
        rows = {
            "valid": stats.valid,
            "invalid": stats.invalid,
            "duplicates dropped": stats.duplicates,
            "total": stats.events,
        }
        title = f"validator {service.settings.group}: this run ({stats.stopped_by})"
        console.print(outcome_table(title, rows, dict(stats.invalid_by_code.most_common())))
        console.print(
            f"{stats.batches:,} batches, {stats.events_per_s:,.0f} events/s while busy, "
            f"{stats.seconds:.1f} s in all (dedupe rebuilt from {stats.rebuilt_records:,} valid records)"
        )

    @app.command("validate")
    def validate(
        source_file: Path = typer.Option(..., "--in", help="JSONL file of raw events, one per line."),
        valid_file: Path = typer.Option(..., "--valid", help="Where the valid events go (JSONL)."),
        invalid_file: Path = typer.Option(
            ..., "--invalid", help="Where the invalid ones go, with their reasons (JSONL)."
        ),
        project_dir: Path = ProjectOption,
    ) -> None:
        """Validate a file offline with the validator's code (schema, rules, timestamps,
        dedupe by event id); no event log or dead-letter sink is touched."""
        from rtml.services.validator import validate_file

        project = open_project(project_dir)
        stats = validate_file(project, source_file, valid_file, invalid_file)
        rows = {
            "lines": stats.lines,
            "valid": stats.valid,
            "invalid": stats.invalid,
            "duplicates dropped": stats.duplicates,
        }
        console.print(
            outcome_table(f"validated {source_file}", rows, dict(stats.invalid_by_code.most_common()))
        )
        console.print(f"valid -> {valid_file}\ninvalid -> {invalid_file}")
