"""The demo's live phase: traffic keeps arriving on a simulated clock while predictions are served.

For ``live_seconds`` of wall time a simulated clock runs from the end of the history,
``speed`` times faster than the wall clock (the live traffic's span over ``live_seconds``):

* the producer (this thread) sends each live line to the raw topic once the clock passes its
  event time (:mod:`.stream`), every :data:`TICK_S`;
* the validator (a thread) judges future timestamps by the simulated clock;
* the engine (a thread) applies the valid events; its freshness is measured on the simulated
  clock and divided by ``speed``: wall milliseconds from "the event happened" to "readable";
* for each valid cart as it is sent, a client (:data:`CLIENTS` threads) posts
  ``POST /predict/{model}?at=<the cart's time>`` to the server (its own process) with the
  cart's keys and request fields, and ``X-Request-ID: <the cart's event id>``. A client waits
  until the engine has applied the cart (the engine's newest event time has reached the cart's
  time): a simulated second passes in a fraction of a wall millisecond, so reading "now"
  would lose the events of the last simulated minutes to the pipeline's wall-clock latency.
  Reads are exact for ``engine.exact_for`` before the newest event, which the demo raises to
  cover :data:`EXACT_WALL_S` of wall time.

Then the validator and the engine drain what is left and the server stops (writing out its
prediction log). Labels and the online AUC are the monitor stage's (:mod:`.monitoring`).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from rtml.core.monitoring import percentiles_ms
from rtml.core.predict import request_spec
from rtml.datagen import RawTopicWriter
from rtml.demo.stream import Cart, LiveTraffic, iso_ms
from rtml.project import Project
from rtml.services.engine import EngineService, EngineStats
from rtml.services.engine.settings import EngineSettings
from rtml.services.validator import ValidatorService
from rtml.timeutil import from_millis, parse_duration

# The producer sends what became due every this often: each send is one durable write
# transaction of the local log, which the validator's writes wait for.
TICK_S = 0.1
LIVE_BATCH = 1000  # events per engine batch while the traffic runs (see during_traffic)
CLIENTS = 4  # prediction client threads
EXACT_WALL_S = 15.0  # wall seconds of simulated time online reads stay exact for
GATE_TIMEOUT_S = 10.0  # a client waits at most this for the engine to apply a cart
QUEUE_WAIT_S = 30.0  # after the traffic: how long the clients may take to finish the queue
MIN_EXACT_MS = 10 * 60_000
WARM_UP_TIMEOUT_S = 120.0


def live_speed(span_ms: int, live_seconds: float) -> float:
    """Simulated seconds per wall second: the live traffic's span in ``live_seconds``."""
    return max(1.0, span_ms / 1000.0 / live_seconds) if live_seconds > 0 else 1.0


def live_engine_settings(base: EngineSettings, speed: float) -> EngineSettings:
    """The engine's settings for a demo run at ``speed``: reads exact for :data:`EXACT_WALL_S`
    wall seconds of simulated time, freshness measured for every live event. The history run
    uses them too: a restored engine keeps its checkpoint's ``exact_for``."""
    exact_ms = max(MIN_EXACT_MS, math.ceil(speed * EXACT_WALL_S * 1000))
    exact_m = max(parse_duration(base.exact_for).total_seconds() / 60, math.ceil(exact_ms / 60_000))
    horizon_s = max(300, math.ceil(speed * 60))
    return base.model_copy(
        update={
            "exact_for": f"{int(exact_m)}m",
            "freshness_horizon": f"{horizon_s}s",
            "poll_timeout": "50ms",
        }
    )


def during_traffic(settings: EngineSettings) -> EngineSettings:
    """The engine's settings while the live traffic runs. No checkpoint until it stops: a
    checkpoint snapshots the whole state (seconds, holding the interpreter lock: the validator
    and the clients in this process wait too), and the engine takes one whenever it falls idle
    (``idle_polls`` empty polls), which between live batches is all the time. Batches of at
    most :data:`LIVE_BATCH` events: after a pause the engine catches up in steps the clients
    can follow (a client reads a cart at its time, which must stay within ``exact_for`` of the
    newest applied event)."""
    return settings.model_copy(
        update={
            "checkpoint_interval": "1h",
            "checkpoint_events": 1_000_000_000,
            "idle_polls": 1_000_000_000,
            "batch_size": LIVE_BATCH,
            "state_interval": "0s",  # write the touched states after every batch
        }
    )


class SimClock:
    """Simulated time: ``start_ms`` when :meth:`start` is called, then ``speed`` x wall time."""

    def __init__(self, start_ms: int, speed: float) -> None:
        self.start_ms = start_ms
        self.speed = speed
        self._wall0: float | None = None

    def start(self) -> None:
        self._wall0 = time.monotonic()

    def now_ms(self) -> int:
        if self._wall0 is None:
            return self.start_ms
        return self.start_ms + int((time.monotonic() - self._wall0) * self.speed * 1000)

    def now(self) -> datetime:
        return from_millis(self.now_ms())


class EngineProgress(logging.Handler):
    """The newest event time the engine has made readable (from its ``batch`` log lines:
    watermark + allowed lateness = the newest event time of its slowest partition)."""

    def __init__(self, lateness_ms: int) -> None:
        super().__init__()
        self.lateness_ms = lateness_ms
        self.applied_ms: int | None = None
        self.started = threading.Event()
        self._cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        event = record.getMessage()
        if event == "engine_started":
            self.started.set()
        if event != "batch":
            return
        fields = getattr(record, "rtml_fields", {})
        watermark = fields.get("watermark_ms")
        if watermark is None or not fields.get("keys_written"):
            return  # states not written yet (the engine writes them with a later batch)
        with self._cond:
            self.applied_ms = int(watermark) + self.lateness_ms
            self._cond.notify_all()

    def wait_for(self, t_ms: int, timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: self.applied_ms is not None and self.applied_ms >= t_ms, timeout=timeout_s
            )


@dataclass
class ServingTally:
    requests: int = 0
    errors: int = 0
    ungated: int = 0  # requests sent before the engine had applied the cart (timeout)
    latencies_s: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float, error: str | None) -> None:
        with self.lock:
            self.requests += 1
            self.latencies_s.append(seconds)
            if error is not None:
                self.errors += 1
                if len(self.error_samples) < 5:
                    self.error_samples.append(error)


@dataclass
class LiveResult:
    speed: float
    seconds: float  # wall seconds of traffic
    start_ms: int
    end_ms: int  # simulated time reached
    sent: int  # live lines sent
    carts: int
    tally: ServingTally
    engine: EngineStats  # the engine's run during the traffic
    drained: EngineStats  # what was left after it
    validated: dict[str, int]

    @property
    def freshness_ms(self) -> tuple[float | None, float | None]:
        """Wall milliseconds, event -> readable online (p50, p99)."""
        f = self.engine.freshness
        if f is None:
            return None, None
        p50, p99 = f.percentile(50), f.percentile(99)
        return (
            None if p50 is None else p50 / self.speed,
            None if p99 is None else p99 / self.speed,
        )

    @property
    def latency_ms(self) -> tuple[float | None, float | None]:
        p50, p99 = percentiles_ms(self.tally.latencies_s)
        return p50, p99


class _Client(threading.Thread):
    def __init__(
        self,
        url: str,
        model: str,
        fields: list[str],
        carts: queue.Queue[Cart | None],
        progress: EngineProgress,
        tally: ServingTally,
        headers: dict[str, str],
    ) -> None:
        super().__init__(daemon=True)
        self.headers = headers
        self.url, self.model, self.fields = url, model, fields
        self.carts, self.progress, self.tally = carts, progress, tally

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            while (cart := self.carts.get()) is not None:
                if not self.progress.wait_for(cart.t_ms, GATE_TIMEOUT_S):
                    with self.tally.lock:
                        self.tally.ungated += 1
                body = {name: cart.event.get(name) for name in self.fields}
                started = time.perf_counter()
                error: str | None = None
                try:
                    reply = client.post(
                        f"/predict/{self.model}",
                        params={"at": iso_ms(cart.t_ms)},
                        json=body,
                        headers={**self.headers, "X-Request-ID": cart.event_id},
                    )
                    if reply.status_code != 200:
                        error = f"{reply.status_code} {reply.text[:200]}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                self.tally.record(time.perf_counter() - started, error)


def run_live(
    project: Project,
    traffic: LiveTraffic,
    *,
    url: str,
    model: str,
    headers: dict[str, str] | None = None,
    seconds: float,
    speed: float,
    engine_settings: EngineSettings,
    engine_logger: logging.Logger,
    validator_logger: logging.Logger,
    on_tick: Any = None,
) -> LiveResult:
    """Run the live phase (see the module doc); ``on_tick(sim_ms, sent, tally)`` is called
    about ten times a second for the progress display."""
    clock = SimClock(traffic.start_ms, speed)
    source = next(iter(project.definitions.sources.values()))
    lateness_ms = int(parse_duration(source.allowed_lateness).total_seconds() * 1000)
    progress = EngineProgress(lateness_ms)
    engine_logger.addHandler(progress)
    validated = _Seen("batch")
    validator_logger.addHandler(validated)
    spec = request_spec(project.definitions.model(model), project.definitions.schemas)
    fields = [name for name, _ in spec.keys] + [name for name, _ in spec.request]
    tally = ServingTally()
    carts: queue.Queue[Cart | None] = queue.Queue()
    stop_engine, stop_validator = threading.Event(), threading.Event()
    box: dict[str, Any] = {}

    def run_engine() -> None:
        try:
            box["engine"] = EngineService(
                project, settings=during_traffic(engine_settings), logger=engine_logger, clock=clock.now_ms
            ).run(stop=stop_engine)
        except BaseException as exc:  # re-raised below
            box["error"] = exc

    validator = ValidatorService(project, now=clock.now, logger=validator_logger)
    threads = [
        threading.Thread(target=run_engine, daemon=True),
        threading.Thread(target=lambda: validator.run(stop=stop_validator), daemon=True),
    ]
    clients = [_Client(url, model, fields, carts, progress, tally, headers or {}) for _ in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        for client in clients:
            client.start()
        sent = _warm_up(project, traffic, progress, validated.seen)
        sent = _produce(project, traffic, clock, seconds, carts, tally, on_tick, sent)
        for _ in clients:
            carts.put(None)
        deadline = time.monotonic() + QUEUE_WAIT_S
        for client in clients:
            client.join(timeout=max(0.1, deadline - time.monotonic()))
        elapsed_ms = clock.now_ms()
    finally:
        stop_validator.set()
        threads[1].join(timeout=60)
        stop_engine.set()
        threads[0].join(timeout=60)
        engine_logger.removeHandler(progress)
        validator_logger.removeHandler(validated)
    if "error" in box:
        raise box["error"]
    end = from_millis(max(traffic.end_ms, elapsed_ms))
    drained_validator = ValidatorService(project, now=lambda: end, logger=validator_logger).run(
        until_idle=True
    )
    drained = EngineService(project, settings=engine_settings, logger=engine_logger).run(until_idle=True)
    return LiveResult(
        speed=speed,
        seconds=seconds,
        start_ms=traffic.start_ms,
        end_ms=min(elapsed_ms, traffic.end_ms),
        sent=sent,
        carts=sum(1 for c in traffic.carts.values() if c.t_ms >= traffic.start_ms),
        tally=tally,
        engine=box["engine"],
        drained=drained,
        validated={"drained": drained_validator.events},
    )


def _warm_up(
    project: Project, traffic: LiveTraffic, progress: EngineProgress, validated: threading.Event
) -> int:
    """Before the clock starts: send the first live line (unless it is a cart) and wait until
    the validator has handled it and the engine has restored its checkpoint. The validator
    rebuilds its de-duplication ids from the valid topic before its first batch: seconds the
    live traffic must not wait for. Returns the lines sent."""
    sent = 0
    if traffic.lines and 0 not in traffic.carts:
        with RawTopicWriter.for_project(project.root) as writer:
            writer.write(traffic.lines[0])
        sent = 1
        validated.wait(timeout=WARM_UP_TIMEOUT_S)
    progress.started.wait(timeout=WARM_UP_TIMEOUT_S)
    return sent


class _Seen(logging.Handler):
    """Sets ``seen`` once a service logs ``event``."""

    def __init__(self, event: str) -> None:
        super().__init__()
        self.event = event
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.event:
            self.seen.set()


def _produce(
    project: Project,
    traffic: LiveTraffic,
    clock: SimClock,
    seconds: float,
    carts: queue.Queue[Cart | None],
    tally: ServingTally,
    on_tick: Any,
    sent: int,
) -> int:
    """Send each line (from ``sent`` on) when the clock passes its time; queue its cart.
    Returns the lines sent in all."""
    lines, due = traffic.lines, traffic.due_ms
    last_tick = 0.0
    with RawTopicWriter.for_project(project.root) as writer:
        clock.start()
        started = time.monotonic()
        while sent < len(lines):
            over = time.monotonic() - started >= seconds
            now = traffic.end_ms if over else clock.now_ms()
            first = sent
            while sent < len(lines) and due[sent] <= now:
                writer.write(lines[sent])
                sent += 1
            if sent > first:
                writer.flush()
                for i in range(first, sent):
                    cart = traffic.carts.get(i)
                    if cart is not None and cart.t_ms >= traffic.start_ms:
                        carts.put(cart)
            if on_tick is not None and time.monotonic() - last_tick >= 0.1:
                last_tick = time.monotonic()
                on_tick(min(now, traffic.end_ms), sent, tally)
            if over:
                break
            time.sleep(TICK_S)
    return sent
