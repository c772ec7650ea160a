"""The ``uvicorn`` serving backend: the server app in this process (the embedded default).

One uvicorn server in a thread of this process; ``server.host``/``server.port`` of
``rtml.yaml`` unless given. Requests run on uvicorn's event loop, the scoring in its
thread pool (see docs/serving.md).
"""

from __future__ import annotations

import threading
import time

import uvicorn

from rtml.backends.serving.base import base_url, wait_for_signal, wait_healthy
from rtml.backends.serving.config import UvicornServingConfig
from rtml.errors import BackendUnavailableError
from rtml.project import Project
from rtml.services.server.app import create_app

# Longer than the gateway's upstream keep-alive (60 s, nginx.conf.template): the server
# never closes an idle connection NGINX is about to reuse (uvicorn's default is 5 s).
KEEP_ALIVE_S = 75
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class UvicornServing:
    def __init__(self, config: UvicornServingConfig | None = None) -> None:
        self.config = config or UvicornServingConfig()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None

    def start(self, project: Project, *, host: str | None = None, port: int | None = None) -> str:
        if self._server is not None:
            raise RuntimeError("already serving; call stop() first")
        settings = project.config.server
        host = host or settings.host
        port = port if port is not None else settings.port
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(project),
                host=host,
                port=port,
                log_config=None,
                access_log=False,  # the app writes one JSON line per request itself
                timeout_keep_alive=KEEP_ALIVE_S,
            )
        )
        thread = threading.Thread(target=server.run, name="rtml-uvicorn", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            self.stop()
            raise BackendUnavailableError(
                f"the server could not listen on {host}:{port} (see the log above). "
                "Fix: free the port, or pick another with --port or server.port in rtml.yaml"
            )
        self.url = base_url(host, port or _bound_port(server) or port)
        if not wait_healthy(self.url, START_TIMEOUT_S, thread.is_alive):
            self.stop()
            raise BackendUnavailableError(f"the server at {self.url} does not answer /health")
        return self.url

    def wait(self) -> None:
        thread = self._thread
        wait_for_signal(lambda: thread is not None and thread.is_alive())

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():  # a request that does not end: stop waiting for it
            server.force_exit = True
            thread.join(5.0)


def _bound_port(server: uvicorn.Server) -> int | None:
    """The port the OS picked for ``port: 0``."""
    for listener in getattr(server, "servers", []):
        for sock in listener.sockets:
            return int(sock.getsockname()[1])
    return None
