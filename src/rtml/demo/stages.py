"""The stages of ``rtml demo`` that exist so far, in order.

Each stage fills the part of the summary it owns and nothing else. See docs/demo.md.
"""

from __future__ import annotations

import shutil
import time

from rich.table import Table

from rtml.apply import apply_project
from rtml.config import CONFIG_FILE
from rtml.datagen import RawTopicWriter, write_truth
from rtml.demo.live_stage import live_stage, serve_stage
from rtml.demo.logs import file_logger
from rtml.demo.monitoring import monitor_stage
from rtml.demo.report import report_stage
from rtml.demo.runner import DemoContext, Stage
from rtml.demo.scale import Gateway, index_stage, own_champion, scale_project_stage
from rtml.demo.stream import iso_ms
from rtml.demo.training import train_stage
from rtml.progress import progress_bar, tracked
from rtml.project import RAW_EVENTS, Project, init_project
from rtml.status import backends
from rtml.timeutil import from_millis

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
    ctx.summary.backends = backends(project)
    views = len(project.definitions.feature_views)
    ctx.console.print(
        f"applied {len(plan)} definitions: {views} feature views, "
        f"{len(project.definitions.models)} model(s); event log: {project.config.event_log.type}"
    )


def generate_stage(ctx: DemoContext) -> None:
    """Synthetic traffic with a planted purchase probability: the history, and after it the
    live phase's traffic (:mod:`rtml.demo.stream`); the truth stays on the side."""
    from rtml.demo.stream import generate_with_live, plan_live
    from rtml.services.validator.factory import build_validator

    opts = ctx.options
    project = ctx.require_project()
    live_hours = opts.live_hours if opts.live_seconds > 0 else 0.0
    generation, history = generate_with_live(
        opts.events, seed=opts.seed, days=opts.days, dirty_rate=opts.dirty_rate, live_hours=live_hours
    )
    truth_path = project.data_dir / "truth.csv"
    write_truth(generation.truth, truth_path)
    traffic = plan_live(generation, history, build_validator(project, project.config.validator))
    ctx.artifacts["generation"] = generation
    ctx.artifacts["history"] = history
    ctx.artifacts["traffic"] = traffic
    s = generation.summary
    ctx.console.print(
        f"generated {s.produced:,} lines: {s.valid:,} valid events, {s.invalid:,} malformed, "
        f"{s.duplicates:,} duplicates, {s.out_of_order:,} late; {s.carts:,} carts "
        f"(positive rate {s.positive_rate:.2f}, oracle AUC {s.oracle_auc:.3f}); truth -> {truth_path}"
    )
    ctx.console.print(
        f"history: the first {history:,} lines (to {iso_ms(traffic.start_ms)}); live phase: "
        f"{len(traffic.lines):,} lines over {traffic.span_ms / 3_600_000:.1f} simulated hours "
        f"({len(traffic.carts):,} carts)"
    )


def ingest_stage(ctx: DemoContext) -> None:
    """Send every raw line to ``<project>.events.raw`` and count what the log holds."""
    project = ctx.require_project()
    lines = ctx.artifacts["generation"].lines[: ctx.artifacts["history"]]
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


def validate_stage(ctx: DemoContext) -> None:
    """Run the validator until the raw topic is drained; fill events.{valid,invalid,duplicates}
    from where the events really ended (the valid topic, the duplicates topic, the dead
    letters), not from the validator's own counters."""
    from rtml.services.validator import ValidatorService
    from rtml.services.validator.counts import counts

    project = ctx.require_project()
    end = from_millis(ctx.artifacts["traffic"].start_ms)
    # Replayed history: "now" for the future-timestamp check is the end of the history.
    logger = file_logger(project, "validator")
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
    """Run the feature engine over the valid topic (the history); fill features.{views,
    events_per_s} and events.late. Freshness needs live traffic: the live stage fills
    features.freshness_* (and adds its late events)."""
    from rtml.demo.live import live_engine_settings, live_speed
    from rtml.services.engine import EngineService

    project = ctx.require_project()
    opts = ctx.options
    speed = live_speed(ctx.artifacts["traffic"].span_ms, opts.live_seconds)
    settings = live_engine_settings(project.config.engine, speed)
    ctx.artifacts["engine_settings"] = settings
    logger = file_logger(project, "engine")
    history = EngineService(project, settings=settings, logger=logger).run(until_idle=True)
    features = ctx.summary.features
    features.views = history.views
    features.events_per_s = round(history.events_per_s)
    ctx.summary.events.late = history.late
    ctx.console.print(
        f"{history.views} feature views over {history.events:,} valid events "
        f"at {history.events_per_s:,.0f}/s "
        f"({history.late:,} late, {sum(history.dropped.values()):,} too old for the online state, "
        f"{history.checkpoints} checkpoints; reads exact for {settings.exact_for} before the newest event)"
    )


def train_and_start_server(ctx: DemoContext) -> None:
    """Start the server (its own process) in the background, then train: the server answers
    at once and loads the champion as soon as training promotes it."""
    from rtml.demo.serving import DemoServer

    if ctx.options.live_seconds > 0:
        server = DemoServer.start(ctx.require_project())
        ctx.artifacts["server"] = server
        ctx.cleanups.append(server.stop)
        ctx.console.print(f"server starting at {server.url} in the background (log: {server.log_path})")
        if ctx.options.scale:
            upstream = server.url.removeprefix("http://")
            gateway = Gateway.start(ctx.require_project(), upstream)
            ctx.artifacts["gateway"] = gateway
            ctx.cleanups.append(gateway.stop)
            ctx.summary.backends["gateway"] = "nginx"
            ctx.console.print(f"NGINX gateway at {gateway.url} in front of {upstream} ({gateway.conf})")
    train_stage(ctx)
    if ctx.options.scale:
        own_champion(ctx)


STAGES: list[tuple[str, Stage]] = [
    ("project", project_stage),
    ("generate", generate_stage),
    ("ingest", ingest_stage),
    ("validate", validate_stage),
    ("features", features_stage),
    ("train", train_and_start_server),
    ("serve", serve_stage),
    ("live", live_stage),
    ("monitor", monitor_stage),
    ("report", report_stage),
]

# rtml demo --scale: the same stages on the scale-out backends, and the dead-letter indexer.
SCALE_STAGES: list[tuple[str, Stage]] = [
    ("project", scale_project_stage),
    *STAGES[1:4],  # generate, ingest, validate
    ("index", index_stage),
    *STAGES[4:],  # features ... report
]


def summary_table(rows: list[tuple[str, str]]) -> Table:
    table = Table(title="rtml demo summary", title_justify="left")
    table.add_column("key")
    table.add_column("value", justify="right")
    for key, value in rows:
        table.add_row(key, value)
    return table
