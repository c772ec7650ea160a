"""``rtml dataset``: events into the offline store, point-in-time training sets out.

* ``rtml dataset load FILE.jsonl`` validates raw events and appends the valid ones
  (until the streaming engine appends live events, this is how they get there);
* ``rtml dataset build --model M --out FILE.parquet [--spine FILE]`` builds a model's
  training set. See docs/offline-store.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rtml.cli.common import ProjectOption, console, err_console, open_project
from rtml.errors import InvalidInputError
from rtml.progress import progress_bar


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The offline store: load events, build training sets.", no_args_is_help=True)
    app.add_typer(group, name="dataset")

    @group.command("build")
    def build(
        model: Annotated[str, typer.Option("--model", "-m", help="The model whose training set to build.")],
        out: Annotated[Path, typer.Option("--out", "-o", dir_okay=False, help="Parquet file to write.")],
        spine: Annotated[
            Path | None,
            typer.Option(
                dir_okay=False,
                help="CSV or Parquet file of the rows to build: the label's join keys and a time column "
                "(event_time, ISO-8601 with a zone, or ts_ms). Default: the label's prediction points.",
            ),
        ] = None,
        include_incomplete: Annotated[
            bool,
            typer.Option(
                "--include-incomplete",
                help="Keep rows whose label horizon reaches past the last stored event (label empty).",
            ),
        ] = False,
        project_dir: Path = ProjectOption,
    ) -> None:
        """Build the point-in-time-correct training set of a model: every feature as of
        each row's time, the on-demand features and the label."""
        import pyarrow.parquet as pq

        from rtml.offline import build_training_set, summarize, training_plan

        if out.suffix.lower() not in {".parquet", ".pq"}:
            raise InvalidInputError(f"--out {out}: write a .parquet file")
        project = open_project(project_dir)
        plan = training_plan(project, model)
        started = time.perf_counter()
        with progress_bar(err_console) as bar:
            task = bar.add_task(f"building {model}", total=100)
            table = build_training_set(
                project,
                model,
                spine,
                include_incomplete=include_incomplete,
                progress=lambda done: bar.update(task, completed=round(done * 100)),
            )
        seconds = time.perf_counter() - started
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, out)
        except OSError as exc:
            raise InvalidInputError(f"cannot write {out}: {exc.strerror}. Fix: check the path") from None
        summary = summarize(table, plan)
        report = Table(title=f"training set of {model} -> {out}", title_justify="left")
        report.add_column("what")
        report.add_column("value", justify="right")
        report.add_row("rows", f"{summary.rows:,}")
        if summary.positives is not None and summary.rows:
            report.add_row("positives", f"{summary.positives:,} ({summary.positives / summary.rows:.1%})")
        report.add_row("features", f"{summary.features}")
        report.add_row("from", summary.first.isoformat() if summary.first else "-")
        report.add_row("to", summary.last.isoformat() if summary.last else "-")
        report.add_row("seconds", f"{seconds:.2f}")
        console.print(report)

    @group.command("load")
    def load(
        file: Annotated[
            Path, typer.Argument(exists=True, dir_okay=False, help="Raw events, one JSON per line.")
        ],
        source: Annotated[
            str | None, typer.Option(help="The source of the events (default: the only one).")
        ] = None,
        project_dir: Path = ProjectOption,
    ) -> None:
        """Validate raw events and append the valid ones to the offline store (an event
        already stored, by event id, is not stored twice)."""
        from rtml.offline import load_events

        project = open_project(project_dir)
        size = file.stat().st_size
        status = err_console.status(f"loading {file} ...") if err_console.is_terminal else nullcontext()
        with status:
            summary = load_events(project, _lines(file), source=source)
        report = Table(title=f"{file} ({size:,} bytes) -> offline store", title_justify="left")
        report.add_column("what")
        report.add_column("count", justify="right")
        for name, value in (
            ("lines", summary.lines),
            ("valid", summary.valid),
            ("appended (new)", summary.appended),
            ("duplicates (by event id)", summary.duplicates),
            ("invalid (not stored)", summary.invalid),
        ):
            report.add_row(name, f"{value:,}")
        for code, count in sorted(summary.invalid_by_code.items()):
            report.add_row(f"  {code}", f"{count:,}")
        console.print(report)


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as f:
            yield from f
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from None
