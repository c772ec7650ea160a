"""`rtml produce`: synthetic e-commerce traffic into the raw topic or a JSONL file."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rtml.datagen.ecommerce import (
    DEFAULT_DAYS,
    DEFAULT_DIRTY_RATE,
    GenerationSummary,
    generate,
    write_truth,
)
from rtml.datagen.records import RawTopicWriter
from rtml.errors import InvalidInputError
from rtml.progress import progress_bar, tracked
from rtml.timeutil import parse_timestamp

_PROGRESS_MIN = 20_000  # smaller runs finish too fast for a progress bar to help


def summary_table(summary: GenerationSummary, destination: str) -> Table:
    table = Table(title=f"produced -> {destination}", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("produced", f"{summary.produced:,}")
    table.add_row("valid (distinct)", f"{summary.valid:,}")
    for name, count in summary.event_types.items():
        table.add_row(f"  {name}", f"{count:,}")
    table.add_row("  delivered late (out_of_order)", f"{summary.out_of_order:,}")
    table.add_row("invalid", f"{summary.invalid:,}")
    for name, count in summary.kinds.items():
        if name not in {"duplicate", "out_of_order"}:
            table.add_row(f"  {name}", f"{count:,}")
    table.add_row("duplicates", f"{summary.duplicates:,}")
    table.add_row("carts (truth rows)", f"{summary.carts:,}")
    table.add_row("label positive rate", f"{summary.positive_rate:.3f}")
    table.add_row("oracle AUC", f"{summary.oracle_auc:.3f}")
    if summary.first_event_time and summary.last_event_time:
        table.add_row("first event", summary.first_event_time.isoformat())
        table.add_row("last event", summary.last_event_time.isoformat())
    return table


def register(app: typer.Typer) -> None:
    @app.command(
        "produce",
        help=(
            "Generate synthetic e-commerce clickstream with a planted, known purchase probability."
            "\n\nSends the raw lines, dirty ones included, to the project's raw topic "
            "(<project>.events.raw), or writes them to --out. The planted probability and the "
            "realized label of each cart event go to --truth only, never into the stream. "
            "See docs/generator.md."
        ),
    )
    def produce(
        events: Annotated[
            int,
            typer.Option("--events", "-n", min=1, help="How many lines to produce (dirty ones included)."),
        ] = 10_000,
        seed: Annotated[
            int, typer.Option(min=0, help="Random seed: the same seed and options give the same bytes.")
        ] = 0,
        start: Annotated[
            str, typer.Option(help="Event time of the start of the traffic (ISO-8601 with a zone).")
        ] = "2019-10-01T00:00:00Z",
        days: Annotated[
            float | None,
            typer.Option(help=f"Spread the events over about this many days (default {DEFAULT_DAYS:g})."),
        ] = None,
        rate: Annotated[
            float | None,
            typer.Option(help="Instead of --days: events per second of event time."),
        ] = None,
        dirty_rate: Annotated[
            float,
            typer.Option(
                "--dirty-rate",
                min=0.0,
                max=0.5,
                help="Share of dirty lines (malformed, duplicated, late); 0 for a clean stream.",
            ),
        ] = DEFAULT_DIRTY_RATE,
        out: Annotated[
            Path | None,
            typer.Option(
                "--out", "-o", dir_okay=False, help="Write JSON lines to this file instead of the event log."
            ),
        ] = None,
        truth: Annotated[
            Path | None,
            typer.Option(
                dir_okay=False,
                help="Also write the truth of each cart (planted probability, label): .csv or .jsonl.",
            ),
        ] = None,
        project: Annotated[
            Path, typer.Option("--project", "-p", help="Project directory holding rtml.yaml.")
        ] = Path("."),
    ) -> None:
        """Generate traffic (help text above)."""
        try:
            start_time = parse_timestamp(start)
        except ValueError:
            raise InvalidInputError(
                f"--start {start!r} is not an ISO-8601 time with a zone. Fix: write e.g. 2019-10-01T00:00:00Z"
            ) from None
        if days is not None and rate is not None:
            raise InvalidInputError("give --days or --rate, not both")
        console = Console()
        status = Console(stderr=True)
        with status.status(f"generating {events:,} events ...") if status.is_terminal else nullcontext():
            result = generate(
                events, seed=seed, start=start_time, days=days, rate=rate, dirty_rate=dirty_rate
            )
        show = events >= _PROGRESS_MIN
        with progress_bar(status, enabled=show) as progress:
            verb = "writing" if out is not None else "sending"
            lines = tracked(result.lines, progress, verb, len(result.lines))
            if out is not None:
                _write_lines(out, lines)
                destination = str(out)
            else:
                with RawTopicWriter.for_project(project) as writer:
                    for line in lines:
                        writer.write(line)
                destination = writer.topic
        if truth is not None:
            write_truth(result.truth, truth)
        console.print(summary_table(result.summary, destination))
        if truth is not None:
            console.print(f"truth: {len(result.truth):,} cart rows -> {truth}")


def _write_lines(path: Path, lines: Iterable[bytes]) -> None:
    try:
        with path.open("wb") as f:
            for line in lines:
                f.write(line)
                f.write(b"\n")
    except OSError as exc:
        raise InvalidInputError(f"cannot write {path}: {exc.strerror}. Fix: check the path") from None
