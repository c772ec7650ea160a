"""The server's Prometheus metrics and its access log (one JSON line per request)."""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rtml.services.logging import log_event

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    """The metrics of one app, on their own registry (served at ``/metrics``).

    Routers of other concerns (predictions, feature reads) register theirs on
    ``self.registry`` too.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rtml_http_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rtml_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "rtml_ingest_events",
            "Events accepted by POST /events and written to the raw topic, by validation outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.ingest_bytes = Counter(
            "rtml_ingest_body_bytes", "Bytes of the POST /events bodies accepted", registry=self.registry
        )


class AccessLog:
    """ASGI middleware: counts and times each request by route and status, and logs it
    (``lines``: every request, only those answered with status >= 400, or none)."""

    def __init__(
        self, app: ASGIApp, *, metrics: ServerMetrics, logger: logging.Logger, lines: str = "all"
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.logger = logger
        self.min_status = {"all": 0, "errors": 400, "off": 1000}[lines]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless a response starts

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            elapsed = time.perf_counter() - start
            route = _route_of(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method, str(status)).observe(elapsed)
            if status >= self.min_status:
                fields: dict[str, Any] = {
                    "method": method,
                    "route": route,
                    "path": scope.get("path", ""),
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                }
                client = scope.get("client")
                if client:
                    fields["client"] = client[0]
                level = logging.WARNING if status >= 500 else logging.INFO
                log_event(self.logger, "http_request", level=level, **fields)


def _route_of(scope: Scope) -> str:
    """The route template (``/predict/{model}``), the path of a fixed route such as
    ``/openapi.json``, or ``unmatched`` -- never a client-chosen path, to bound the labels."""
    template = getattr(scope.get("route"), "path", None)
    if template:
        return str(template)
    if scope.get("endpoint") is not None:  # a plain Starlette route: docs, openapi.json
        return str(scope.get("path", "unmatched"))
    return "unmatched"
