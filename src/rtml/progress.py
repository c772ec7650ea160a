"""Progress bars for long work (rich), shown only on a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


def progress_bar(console: Console, *, enabled: bool = True, in_bytes: bool = False) -> Progress:
    """A transient progress bar on ``console``, shown only on a terminal."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn() if in_bytes else MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    )


def tracked(items: Iterable[T], progress: Progress, description: str, total: int) -> Iterator[T]:
    task = progress.add_task(description, total=total)
    for n, item in enumerate(items, start=1):
        yield item
        if n % 1000 == 0:
            progress.update(task, completed=n)
    progress.update(task, completed=total)
