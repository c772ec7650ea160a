"""rtml's HTTP server: one ASGI app (FastAPI), one router per concern.

- :mod:`.app`: ``create_app(project)`` -- the app, its error handler and access log;
- :mod:`.ingest`: ``POST /events``;
- :mod:`.health`: ``/health`` and ``/metrics``;
- :mod:`.runner`: ``serve(project, host, port)`` (what ``rtml serve`` runs).

Nothing is imported here, so that ``rtml.config`` can import :mod:`.settings` without
loading the web stack.
"""

from typing import Any


def __getattr__(name: str) -> Any:  # ``from rtml.services.server import create_app``, lazily
    if name == "create_app":
        from rtml.services.server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
