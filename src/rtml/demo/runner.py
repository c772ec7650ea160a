"""Runs the demo's stages in order, timing each, with a progress display.

Each stage is a function ``(DemoContext) -> None`` that fills the part of the summary
it owns (:data:`rtml.demo.stages.STAGES`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from rtml.datagen.ecommerce import DEFAULT_DIRTY_RATE
from rtml.demo.summary import DemoSummary
from rtml.project import Project


@dataclass
class DemoOptions:
    directory: Path
    events: int = 200_000
    seed: int = 42
    days: float = 14.0
    dirty_rate: float = DEFAULT_DIRTY_RATE
    live_seconds: float = 30.0
    live_hours: float = 24.0  # simulated hours of live traffic (the clock's speed follows)
    trials: int = 8
    scale: bool = False  # the scale-out backends (rtml.scale.yaml; rtml.demo.scale)
    cleanup: bool = False  # --scale: delete what the run created on the servers at the end


@dataclass
class DemoContext:
    options: DemoOptions
    console: Console
    summary: DemoSummary = field(default_factory=DemoSummary)
    project: Project | None = None
    # What one stage hands to the next (e.g. generated events, truth rows).
    artifacts: dict[str, Any] = field(default_factory=dict)
    # Called in reverse order when the demo ends, however it ends (e.g. stop the server).
    cleanups: list[Callable[[], object]] = field(default_factory=list)

    def require_project(self) -> Project:
        if self.project is None:
            raise RuntimeError("the project stage must run first")
        return self.project


Stage = Callable[[DemoContext], None]


def run_demo(options: DemoOptions, stages: Sequence[tuple[str, Stage]], console: Console) -> DemoSummary:
    ctx = DemoContext(options=options, console=console)
    started = time.perf_counter()
    try:
        for name, stage in stages:
            console.rule(f"[bold]{name}")
            t0 = time.perf_counter()
            stage(ctx)
            ctx.summary.stages[name] = round(time.perf_counter() - t0, 3)
            ctx.summary.wall_seconds = round(time.perf_counter() - started, 3)  # so far
    finally:
        for cleanup in reversed(ctx.cleanups):
            cleanup()
    ctx.summary.wall_seconds = round(time.perf_counter() - started, 3)
    return ctx.summary
