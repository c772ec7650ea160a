"""The dead-letter role: where invalid events end, with the reason they are invalid.

Backends: ``table`` (embedded SQLite file, the default), ``kafka`` (the topic
``<project>.events.invalid``), ``opensearch`` (daily OpenSearch/Elasticsearch indices)
and ``memory`` (tests). See docs/dead-letters.md.
"""

from __future__ import annotations

from pathlib import Path

from rtml.backends.dead_letter.base import DeadLetter, DeadLetterSink, TransactionalDeadLetterSink
from rtml.backends.dead_letter.config import DeadLetterConfig, for_project


def open_dead_letter_sink(config: DeadLetterConfig, *, project: str, data_dir: Path) -> DeadLetterSink:
    """Open the sink ``config`` names, with the project's table path, topic or index prefix."""
    from rtml.backends.registry import open_backend

    sink: DeadLetterSink = open_backend(
        "dead_letter", for_project(config, project=project, data_dir=data_dir)
    )
    return sink


__all__ = [
    "DeadLetter",
    "DeadLetterSink",
    "TransactionalDeadLetterSink",
    "open_dead_letter_sink",
]
