"""The demo's ``serve`` and ``live`` stages (the work is in :mod:`.serving` and :mod:`.live`)."""

from __future__ import annotations

from rtml.demo.live import LiveResult, ServingTally, live_speed, run_live
from rtml.demo.logs import file_logger
from rtml.demo.runner import DemoContext
from rtml.demo.scale import Gateway
from rtml.demo.serving import DemoServer
from rtml.demo.stream import LiveTraffic, iso_ms
from rtml.progress import progress_bar


def serve_stage(ctx: DemoContext) -> None:
    """Wait until the server (started with the train stage) is ready: online store reachable
    and the champion loaded."""
    server: DemoServer | None = ctx.artifacts.get("server")
    if server is None:
        ctx.console.print("no live phase (--live-seconds 0): no server")
        return
    ready = server.wait_ready()
    models = ready.get("models", {})
    served = ", ".join(
        f"{name} version {status.get('version')}"
        for name, status in (models.items() if isinstance(models, dict) else [])
    )
    ctx.console.print(f"server {server.url} ready: {served}")
    gateway: Gateway | None = ctx.artifacts.get("gateway")
    if gateway is not None:
        gateway.wait_up()
        ctx.console.print(f"NGINX gateway {gateway.url} up: predictions go through it (X-API-Key)")


def live_stage(ctx: DemoContext) -> None:
    """The live phase (:mod:`.live`); fill serving.* and features.freshness_*."""
    server: DemoServer | None = ctx.artifacts.get("server")
    outcome = ctx.artifacts.get("train_outcome")
    if server is None or outcome is None:
        return
    project = ctx.require_project()
    opts = ctx.options
    traffic: LiveTraffic = ctx.artifacts["traffic"]
    speed = live_speed(traffic.span_ms, opts.live_seconds)
    gateway: Gateway | None = ctx.artifacts.get("gateway")
    url = server.url if gateway is None else gateway.url
    headers = {} if gateway is None else {"X-API-Key": gateway.api_key}
    ctx.console.print(
        f"simulated clock from {iso_ms(traffic.start_ms)}, x{speed:,.0f} "
        f"({traffic.span_ms / 3_600_000:.1f} simulated hours in {opts.live_seconds:g} s): "
        f"{len(traffic.lines):,} events, a prediction for each cart "
        f"(POST {url}/predict/{outcome.report.model}?at=<cart time>)"
    )
    with progress_bar(ctx.console) as progress:
        task = progress.add_task("live", total=len(traffic.lines))

        def on_tick(sim_ms: int, sent: int, tally: ServingTally) -> None:
            progress.update(
                task,
                completed=sent,
                description=f"{iso_ms(sim_ms)[:16]} | {tally.requests:,} predictions, {tally.errors} errors",
            )

        try:
            live = run_live(
                project,
                traffic,
                url=url,
                headers=headers,
                model=outcome.report.model,
                seconds=opts.live_seconds,
                speed=speed,
                engine_settings=ctx.artifacts["engine_settings"],
                engine_logger=file_logger(project, "engine"),
                validator_logger=file_logger(project, "validator"),
                on_tick=on_tick,
            )
        finally:
            code = server.stop()  # writes out the prediction log
    ctx.artifacts["live"] = live
    _fill(ctx, live)
    _show(ctx, live, code)


def _fill(ctx: DemoContext, live: LiveResult) -> None:
    serving = ctx.summary.serving
    serving.requests = live.tally.requests
    serving.errors = live.tally.errors
    p50, p99 = live.latency_ms
    serving.p50_ms = None if p50 is None else round(p50, 2)
    serving.p99_ms = None if p99 is None else round(p99, 2)
    f50, f99 = live.freshness_ms
    ctx.summary.features.freshness_p50_ms = None if f50 is None else round(f50, 1)
    ctx.summary.features.freshness_p99_ms = None if f99 is None else round(f99, 1)
    events = ctx.summary.events
    events.late = (events.late or 0) + live.engine.late + live.drained.late


def _show(ctx: DemoContext, live: LiveResult, code: int | None) -> None:
    tally = live.tally
    p50, p99 = live.latency_ms
    f50, f99 = live.freshness_ms
    hours = (live.end_ms - live.start_ms) / 3_600_000
    ctx.console.print(
        f"{live.sent:,} events in {live.seconds:g} s ({hours:.1f} simulated hours) through validator and "
        f"engine: freshness p50 {f50 or 0:,.1f} ms, p99 {f99 or 0:,.1f} ms (wall time, event -> readable)"
    )
    ctx.console.print(
        f"{tally.requests:,} predictions for {live.carts:,} carts, {tally.errors} errors; latency p50 "
        f"{p50 or 0:,.1f} ms, p99 {p99 or 0:,.1f} ms (client side, HTTP); server stopped (exit {code})"
    )
    if tally.ungated:
        ctx.console.print(
            f"[yellow]{tally.ungated} requests were sent before the engine had applied their cart"
        )
    for sample in tally.error_samples:
        ctx.console.print(f"[red]error: {sample}")
