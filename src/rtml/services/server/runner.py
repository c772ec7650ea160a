"""``serve(project)``: run the server app on uvicorn until interrupted (``rtml serve``)."""

from __future__ import annotations

import uvicorn

from rtml.project import Project
from rtml.services.server.app import create_app


def serve(project: Project, *, host: str | None = None, port: int | None = None) -> None:
    settings = project.config.server
    uvicorn.run(
        create_app(project),
        host=host or settings.host,
        port=port if port is not None else settings.port,
        log_config=None,
        access_log=False,  # the app writes one JSON line per request itself
    )
