"""`rtml replay`: send a JSONL file of raw events, or a CSV file of the public e-commerce
data set, into the project's raw topic."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from rtml.datagen.csv_replay import check_file, decoded_lines, event_to_line, events_from_csv_lines
from rtml.datagen.records import RawTopicWriter
from rtml.errors import InvalidInputError
from rtml.progress import progress_bar


def _raw_lines(path: Path, progress: Progress) -> Iterator[bytes]:
    """The lines of ``path`` as bytes, advancing a progress bar by bytes read."""
    total = path.stat().st_size
    task = progress.add_task(f"replaying {path.name}", total=total)
    done = 0
    with path.open("rb") as f:
        for n, raw in enumerate(f):
            done += len(raw)
            if n % 2000 == 0:
                progress.update(task, completed=done)
            yield raw
    progress.update(task, completed=total)


def _jsonl_events(raw_lines: Iterator[bytes]) -> Iterator[bytes]:
    for raw in raw_lines:
        line = raw.rstrip(b"\r\n")
        if line.strip():
            yield line


def _csv_events(raw_lines: Iterator[bytes], source: str) -> Iterator[bytes]:
    for event in events_from_csv_lines(decoded_lines(raw_lines, source), source):
        yield event_to_line(event)


def register(app: typer.Typer) -> None:
    @app.command(
        "replay",
        help=(
            "Send a file of events into the project's raw topic (<project>.events.raw)."
            "\n\nWith --file, each non-blank line is sent byte for byte. With --csv, each row "
            "of a public e-commerce data set file becomes a JSON event of the example's schema, "
            "with an event_id derived from the row, so a file replayed twice is deduplicated "
            "downstream. Files are streamed, not loaded whole. See docs/generator.md."
        ),
    )
    def replay(
        file: Annotated[
            Path | None,
            typer.Option(
                "--file",
                "-f",
                dir_okay=False,
                help="JSON lines, one raw event per line (e.g. from rtml produce --out).",
            ),
        ] = None,
        csv_file: Annotated[
            Path | None,
            typer.Option(
                "--csv",
                dir_okay=False,
                help="A CSV file of the public e-commerce data set (2019-Oct.csv, ...), as it is.",
            ),
        ] = None,
        project: Annotated[
            Path, typer.Option("--project", "-p", help="Project directory holding rtml.yaml.")
        ] = Path("."),
        limit: Annotated[int | None, typer.Option(min=0, help="Send at most this many events.")] = None,
    ) -> None:
        """Replay a file (help text above)."""
        if file is not None and csv_file is None:
            path, fmt = check_file(file), "jsonl"
        elif csv_file is not None and file is None:
            path, fmt = check_file(csv_file), "csv"
        else:
            raise InvalidInputError(
                "give exactly one of --file FILE.jsonl or --csv FILE.csv. Fix: e.g. "
                "rtml replay --csv 2019-Oct.csv"
            )
        console = Console()
        status = Console(stderr=True)
        sent = 0
        with progress_bar(status, in_bytes=True) as progress:
            raw = _raw_lines(path, progress)
            events = _jsonl_events(raw) if fmt == "jsonl" else _csv_events(raw, str(path))
            # Read the first event before opening the log, so a bad header fails first.
            first = next(events, None)
            with RawTopicWriter.for_project(project) as writer:
                for line in itertools.chain([first] if first is not None else [], events):
                    if limit is not None and sent >= limit:
                        break
                    writer.write(line)
                    sent += 1
        table = Table(title=f"replayed -> {writer.topic}")
        table.add_column("what")
        table.add_column("value", justify="right")
        table.add_row("file", str(path))
        table.add_row("format", fmt)
        table.add_row("events sent", f"{sent:,}")
        console.print(table)
