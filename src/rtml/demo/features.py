"""The demo's features stage: the engine over the replayed history, then a short live run.

The generated history is from 2019, so it says nothing about freshness (event time ->
readable online). After draining it, :func:`live_run` sends a few seconds of live traffic
through the whole path -- raw topic, validator (wall clock), engine -- with the event
times of now: re-stamped copies of valid events with new ids. The engine's freshness
percentiles come from those.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from rtml.datagen import RawTopicWriter
from rtml.project import VALID_EVENTS, Project
from rtml.services.engine import EngineService, EngineStats
from rtml.services.validator import ValidatorService
from rtml.timeutil import from_millis

LIVE_RATE = 1000  # events per second of the live run
CHUNK_S = 0.05
WARM_UP = 50
_encoder = msgspec.json.Encoder()


class _Waiter(logging.Handler):
    """Sets ``seen`` once a service logs ``event``."""

    def __init__(self, event: str) -> None:
        super().__init__()
        self.event = event
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.event:
            self.seen.set()


@dataclass
class LiveRun:
    sent: int
    stats: EngineStats  # the engine's run during the live traffic
    drained: EngineStats  # the run that applied what was left after it


def _templates(project: Project, n: int) -> list[dict[str, object]]:
    """Up to ``n`` valid events from the start of the valid topic."""
    log = project.event_log()
    try:
        consumer = log.consumer([project.topic(VALID_EVENTS)], f"rtml-demo-live-{uuid.uuid4().hex[:8]}")
        try:
            records = consumer.poll(n, 1.0)
        finally:
            consumer.close()
    finally:
        log.close()
    return [msgspec.json.decode(r.value) for r in records]


def _send(
    writer: RawTopicWriter,
    rows: list[dict[str, object]],
    start: int,
    end: int,
    source: Any,
    tag: str,
    age_ms: int = 0,
) -> None:
    """Events ``start..end`` of ``rows`` (cycled), stamped now - ``age_ms``, new ids; flushed."""
    now = time.time_ns() // 1_000_000 - age_ms
    stamp = from_millis(now).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for i in range(start, end):
        event = dict(rows[i % len(rows)])
        event[source.timestamp_field] = stamp
        event[source.id_field] = f"live-{tag}-{i}"
        writer.write(_encoder.encode(event))
    writer.flush()


def live_run(
    project: Project, seconds: float, logger: logging.Logger, validator_logger: logging.Logger
) -> LiveRun | None:
    """``seconds`` of live traffic at :data:`LIVE_RATE` events/s through validator and engine
    (``logger``: the engine's, ``validator_logger``: the validator's)."""
    rows = _templates(project, max(1, int(seconds * LIVE_RATE)))
    if not rows or seconds <= 0:
        return None
    source = next(iter(project.definitions.sources.values()))
    tag = uuid.uuid4().hex[:8]
    stop_engine, stop_validator = threading.Event(), threading.Event()
    engine = EngineService(project, logger=logger)
    box: dict[str, object] = {}

    def run_engine() -> None:
        try:
            box["stats"] = engine.run(stop=stop_engine)
        except BaseException as exc:  # handed to the stage below
            box["error"] = exc

    engine_thread = threading.Thread(target=run_engine, daemon=True)
    validator = ValidatorService(project, logger=validator_logger)  # the wall clock judges live events
    validator_thread = threading.Thread(target=lambda: validator.run(stop=stop_validator), daemon=True)
    # Warm up, with events stamped an hour ago (not live: no freshness sample): the validator
    # rebuilds its dedupers before its first batch, and the first events move the state's
    # clock from the replayed history to now (evicting the history's tiles at once).
    applied = _Waiter("batch")
    logger.addHandler(applied)
    try:
        engine_thread.start()
        validator_thread.start()
        with RawTopicWriter.for_project(project.root) as writer:
            _send(writer, rows, 0, WARM_UP, source, f"{tag}-warm-up", age_ms=3_600_000)
        applied.seen.wait(timeout=120)
    finally:
        logger.removeHandler(applied)
    time.sleep(0.5)
    sent = 0
    started = time.monotonic()
    with RawTopicWriter.for_project(project.root) as writer:
        while time.monotonic() - started < seconds:
            due = min(len(rows), int((time.monotonic() - started + CHUNK_S) * LIVE_RATE))
            _send(writer, rows, sent, due, source, tag)
            sent = due
            time.sleep(CHUNK_S)
    time.sleep(1.0)
    stop_validator.set()
    validator_thread.join(timeout=60)
    ValidatorService(project, logger=validator_logger).run(until_idle=True)
    stop_engine.set()
    engine_thread.join(timeout=60)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    drained = EngineService(project, logger=logger).run(until_idle=True)
    stats = box["stats"]
    assert isinstance(stats, EngineStats)
    return LiveRun(sent=WARM_UP + sent, stats=stats, drained=drained)
