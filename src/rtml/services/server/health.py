"""``/health`` (the process answers) and ``/metrics`` (Prometheus text format).

Readiness (``/ready``: stores reachable, model loaded) belongs with the serving routers.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from rtml.services.server.observability import ServerMetrics


class Health(BaseModel):
    status: str
    project: str
    version: str

    model_config = {
        "json_schema_extra": {"examples": [{"status": "ok", "project": "ecommerce", "version": "0.1.0"}]}
    }


def build_router(project_name: str, version: str) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health", response_model=Health, summary="Liveness")
    def health() -> Health:
        """The server process is up. It does not check the backends."""
        return Health(status="ok", project=project_name, version=version)

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
    )
    def metrics(request: Request) -> Response:
        """Requests by route, method and status (count and latency), events ingested."""
        server_metrics: ServerMetrics = request.app.state.metrics
        return Response(generate_latest(server_metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
