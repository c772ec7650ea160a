"""``rtml run indexer``: copy the Kafka dead-letter topic into daily search indices."""

from __future__ import annotations

import threading
from pathlib import Path

import typer

from rtml.cli.common import ProjectOption, console, open_project
from rtml.cli.registry_cmd import run_group


def register(app: typer.Typer) -> None:
    @run_group(app).command("indexer")
    def indexer(
        project_dir: Path = ProjectOption,
        until_idle: bool = typer.Option(False, "--until-idle", help="Stop once the topic is drained."),
    ) -> None:
        """Copy the dead-letter topic (dead_letter: {type: kafka}) into the daily OpenSearch /
        Elasticsearch indices of dead_letter.index, with _bulk; offsets are committed after
        the index acknowledged, and re-sent letters are refused by their id, so each letter
        is one document. See docs/dead-letters.md."""
        from rtml.services.indexer import DeadLetterIndexer

        service = DeadLetterIndexer(open_project(project_dir))
        console.print(f"indexing {service.topic} into {service.index.url} (Ctrl-C stops)")
        stop = threading.Event()
        try:
            stats = service.run(until_idle=until_idle, stop=stop)
        except KeyboardInterrupt:
            stop.set()
            raise
        console.print(
            f"indexed {stats.letters:,} letters in {stats.batches:,} bulk requests ({stats.stopped_by})"
        )
