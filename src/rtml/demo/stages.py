"""The stages of ``rtml demo`` that exist so far, in order.

Each stage fills the part of the summary it owns and nothing else. Later issues add
validation, features, training, serving and monitoring stages to :data:`STAGES`.
"""

from __future__ import annotations

import logging
import shutil
import time

from rich.table import Table

from rtml.apply import apply_project
from rtml.config import CONFIG_FILE
from rtml.datagen import RawTopicWriter, generate, write_truth
from rtml.demo.runner import DemoContext, Stage
from rtml.demo.training import train_stage
from rtml.progress import progress_bar, tracked
from rtml.project import RAW_EVENTS, Project, init_project
from rtml.services.logging import service_logger

_IDLE_POLLS = 2


def project_stage(ctx: DemoContext) -> None:
    """Make the demo project from the example (if missing), start from empty state, apply."""
    directory = ctx.options.directory
    if not (directory / CONFIG_FILE).is_file():
        init_project(directory)
        ctx.console.print(f"created project {directory} from the e-commerce example")
    project = Project.load(directory)
    if project.data_dir.exists():
        shutil.rmtree(project.data_dir)  # the demo always starts from an empty pipeline
    plan = apply_project(project, dry_run=False)
    ctx.project = project
    views = len(project.definitions.feature_views)
    ctx.console.print(
        f"applied {len(plan)} definitions: {views} feature views, "
        f"{len(project.definitions.models)} model(s); event log: {project.config.event_log.type}"
    )


def generate_stage(ctx: DemoContext) -> None:
    """Synthetic traffic with a planted purchase probability; the truth stays on the side."""
    opts = ctx.options
    project = ctx.require_project()
    generation = generate(opts.events, seed=opts.seed, days=opts.days, dirty_rate=opts.dirty_rate)
    truth_path = project.data_dir / "truth.csv"
    write_truth(generation.truth, truth_path)
    ctx.artifacts["generation"] = generation
    s = generation.summary
    ctx.console.print(
        f"generated {s.produced:,} lines: {s.valid:,} valid events, {s.invalid:,} malformed, "
        f"{s.duplicates:,} duplicates, {s.out_of_order:,} late; {s.carts:,} carts "
        f"(positive rate {s.positive_rate:.2f}, oracle AUC {s.oracle_auc:.3f}); truth -> {truth_path}"
    )


def ingest_stage(ctx: DemoContext) -> None:
    """Send every raw line to ``<project>.events.raw`` and count what the log holds."""
    project = ctx.require_project()
    lines = ctx.artifacts["generation"].lines
    started = time.perf_counter()
    with progress_bar(ctx.console) as progress, RawTopicWriter.for_project(project.root) as writer:
        for line in tracked(lines, progress, "sending to the event log", len(lines)):
            writer.write(line)
    elapsed = time.perf_counter() - started
    stored = count_topic(project, project.topic(RAW_EVENTS))
    ctx.summary.events.produced = stored
    ctx.console.print(
        f"{writer.sent:,} lines sent to {writer.topic} in {elapsed:.1f} s "
        f"({writer.sent / max(elapsed, 1e-9):,.0f}/s); the log holds {stored:,}"
    )


def count_topic(project: Project, topic: str) -> int:
    """Records in ``topic``, read back through a throw-away consumer group."""
    log = project.event_log()
    try:
        consumer = log.consumer([topic], f"rtml-demo-count-{time.time_ns()}")
        total, idle = 0, 0
        while idle < _IDLE_POLLS:
            batch = consumer.poll(max_records=10_000, timeout=0.2)
            total += len(batch)
            idle = 0 if batch else idle + 1
        consumer.close()
        return total
    finally:
        log.close()


def _file_logger(project: Project, service: str) -> logging.Logger:
    """The service's JSON log lines go to ``<data_dir>/logs/<service>.log`` during the demo,
    so the console shows progress and results only."""
    path = project.data_dir / "logs" / f"{service}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"rtml.demo.{service}")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    return service_logger(logger.name, stream=path.open("a", encoding="utf-8"))


def validate_stage(ctx: DemoContext) -> None:
    """Run the validator until the raw topic is drained; fill events.{valid,invalid,duplicates}
    from where the events really ended (the valid topic, the duplicates topic, the dead
    letters), not from the validator's own counters."""
    from rtml.services.validator import ValidatorService
    from rtml.services.validator.counts import counts

    project = ctx.require_project()
    end = ctx.artifacts["generation"].summary.last_event_time
    # Replayed history: "now" for the future-timestamp check is the end of the stream.
    logger = _file_logger(project, "validator")
    stats = ValidatorService(project, now=lambda: end, logger=logger).run(until_idle=True)
    ended = counts(project)
    ctx.summary.events.valid = ended["valid"]
    ctx.summary.events.invalid = ended["invalid"]
    ctx.summary.events.duplicates = ended["duplicates"]
    ctx.artifacts["invalid_by_code"] = ended["invalid_by_code"]
    ctx.console.print(
        f"validated {stats.events:,} events at {stats.events_per_s:,.0f}/s: {ended['valid']:,} valid, "
        f"{ended['invalid']:,} invalid, {ended['duplicates']:,} duplicates dropped "
        f"(sum {ended['total']:,} of {ctx.summary.events.produced:,} produced)"
    )
    top = Table(title="top invalid reasons", title_justify="left")
    top.add_column("code")
    top.add_column("events", justify="right")
    for code, count in list(ended["invalid_by_code"].items())[:5]:
        top.add_row(code, f"{count:,}")
    ctx.console.print(top)


def features_stage(ctx: DemoContext) -> None:
    """Run the feature engine over the valid topic (history: the rate and the late events),
    then a few seconds of live traffic through validator and engine (freshness); fill
    features.* and events.late. The live probe's events come on top of the generated
    stream; events.{produced,valid,...} keep describing the generated stream."""
    from rtml.demo.features import live_run
    from rtml.services.engine import EngineService

    project = ctx.require_project()
    logger = _file_logger(project, "engine")
    history = EngineService(project, logger=logger).run(until_idle=True)
    seconds = min(ctx.options.live_seconds, 3.0)  # enough for percentiles; the demo stays short
    live = live_run(project, seconds, logger, _file_logger(project, "validator"))
    features = ctx.summary.features
    features.views = history.views
    features.events_per_s = round(history.events_per_s)
    late = history.late
    if live is not None:
        features.freshness_p50_ms = live.stats.freshness_p50_ms
        features.freshness_p99_ms = live.stats.freshness_p99_ms
        late += live.stats.late + live.drained.late
    ctx.summary.events.late = late
    p50, p99 = features.freshness_p50_ms, features.freshness_p99_ms
    ctx.console.print(
        f"{history.views} feature views over {history.events:,} valid events "
        f"at {history.events_per_s:,.0f}/s "
        f"({history.late:,} late, {sum(history.dropped.values()):,} too old for the online state, "
        f"{history.checkpoints} checkpoints)"
    )
    if live is not None:
        ctx.console.print(
            f"live: {live.sent:,} more events in {seconds:.0f} s through validator and engine; "
            f"freshness p50 {p50 or 0:,.1f} ms, p99 {p99 or 0:,.1f} ms"
        )


STAGES: list[tuple[str, Stage]] = [
    ("project", project_stage),
    ("generate", generate_stage),
    ("ingest", ingest_stage),
    ("validate", validate_stage),
    ("features", features_stage),
    ("train", train_stage),
]


def summary_table(rows: list[tuple[str, str]]) -> Table:
    table = Table(title="rtml demo summary", title_justify="left")
    table.add_column("key")
    table.add_column("value", justify="right")
    for key, value in rows:
        table.add_row(key, value)
    return table
