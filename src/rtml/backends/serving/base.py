"""The serving port: run a project's server app somewhere until told to stop.

Both backends serve the same ASGI app (:func:`rtml.services.server.app.create_app`), so the
HTTP API, the predictor and the error bodies are the same whichever runs it:

- ``uvicorn`` (:mod:`.uvicorn`): the app in this process;
- ``ray_serve`` (:mod:`.ray_serve`): the app in each replica of a Ray Serve deployment.

``rtml serve`` calls :meth:`Serving.start`, then :meth:`Serving.wait` (until Ctrl-C or
SIGTERM), then :meth:`Serving.stop`. Tests and benchmarks call ``start``/``stop`` only.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Protocol

import httpx

from rtml.project import Project


class Serving(Protocol):
    def start(self, project: Project, *, host: str | None = None, port: int | None = None) -> str:
        """Start serving ``project``; return the base URL once ``/health`` answers there.
        ``host``/``port`` override the backend's configured address."""
        ...

    def wait(self) -> None:
        """Block until SIGINT or SIGTERM (or until the server ends by itself)."""
        ...

    def stop(self) -> None:
        """Stop serving: finish requests in flight, close the app (the prediction log is
        flushed). Safe to call twice."""
        ...


def wait_for_signal(alive: Callable[[], bool], poll_s: float = 0.5) -> None:
    """Block the main thread until SIGINT/SIGTERM arrives or ``alive()`` turns false; the
    previous signal handlers are put back before returning."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.is_set() and alive():
            stop.wait(poll_s)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def wait_healthy(url: str, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Whether ``GET {url}/health`` answers 200 within ``timeout_s`` (False at once when
    ``alive()`` turns false)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host  # noqa: S104
    return f"http://{shown}:{port}"
