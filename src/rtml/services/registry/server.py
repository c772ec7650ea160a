"""Running the registry: in the foreground (``rtml run registry``) or in a thread
(tests, and services that need a registry next to them)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn

from rtml.backends.schema_store import SchemaRegistryConfig, SchemaStore, open_schema_store
from rtml.errors import BackendUnavailableError
from rtml.services.registry.app import create_app


def serve(
    config: SchemaRegistryConfig,
    *,
    base_dir: Path | None = None,
    host: str | None = None,
    port: int | None = None,
) -> None:
    """Serve the registry described by ``config`` until interrupted."""
    store = open_schema_store(config, base_dir=base_dir)
    try:
        uvicorn.run(
            create_app(store),
            host=host or str(getattr(config, "host", "127.0.0.1")),
            port=port if port is not None else int(getattr(config, "port", 8081)),
            log_config=None,
            access_log=False,  # the app logs one JSON line per request itself
        )
    finally:
        store.close()


class RegistryServer:
    """The registry on a real uvicorn server in a background thread.

        with RegistryServer(store) as server:
            client = SchemaRegistryClient({"url": server.url})

    ``port=0`` picks a free port. The store stays the caller's to close.
    """

    def __init__(self, store: SchemaStore, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn.Config(create_app(store), log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="rtml-registry", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> RegistryServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise BackendUnavailableError(f"the schema registry on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
