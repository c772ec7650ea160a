"""The demo's server: ``rtml serve`` in its own process on a free loopback port.

Its own process, as users run it, and so that its requests do not share a Python
interpreter lock with the validator, the engine and the load generator of the live phase.
It is started before the train stage: it answers at once and loads the champion as soon as
training promotes one (the server follows the alias; docs/serving.md). Its JSON log lines go
to ``<data_dir>/logs/server.log``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from rtml.errors import BackendUnavailableError
from rtml.project import Project

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class DemoServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    _log: IO[bytes]

    @classmethod
    def start(cls, project: Project) -> DemoServer:
        port = free_port()
        log_path = project.data_dir / "logs" / "server.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("ab")
        command = [sys.executable, "-m", "rtml.cli.main", "serve", "--project", str(project.root)]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        # The subprocess loads the same rtml.yaml (and RTML_* variables) as the demo.
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), cwd=project.root
        )
        return cls(process=process, url=f"http://127.0.0.1:{port}", log_path=log_path, _log=log)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> dict[str, object]:
        """Wait for ``/ready`` (online store reachable, champion loaded); its body."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise BackendUnavailableError(
                        f"the demo's server exited with code {self.process.returncode} before it was "
                        f"ready. Fix: read {self.log_path}"
                    )
                try:
                    reply = client.get(f"{self.url}/ready")
                    if reply.status_code == 200:
                        body: dict[str, object] = reply.json()
                        return body
                    last = reply.text
                except httpx.TransportError as exc:
                    last = str(exc) or type(exc).__name__
                time.sleep(0.2)
        raise BackendUnavailableError(
            f"the demo's server at {self.url} was not ready within {timeout_s:.0f} s (last answer: "
            f"{last[:300]}). Fix: read {self.log_path}"
        )

    def stop(self) -> int | None:
        """Stop it as Ctrl-C does (uvicorn shuts down: the prediction log is written out)."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=STOP_TIMEOUT_S)
            return self.process.returncode
        finally:
            self._log.close()
