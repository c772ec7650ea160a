"""One supervised child process: how it is started, restarted with backoff, and stopped.

Each child is its own interpreter (``python -m rtml.cli.main run validator ...``) in its own
session (so a Ctrl-C in the terminal reaches only the supervisor, which then stops the
children in order), with stdout and stderr appended to ``<data_dir>/logs/<name>.log``. On
Linux the child also gets SIGTERM if the supervisor dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess  # noqa: S404 - the supervisor's job is to run rtml's own commands
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtml.timeutil import utc_now

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass


def rtml_argv(*args: str) -> list[str]:
    """``rtml <args>`` run by this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "rtml.cli.main", *args]


@dataclass
class Child:
    """A component: its command, its log, its process and its restart history."""

    name: str
    argv: list[str]
    log_path: Path
    restart: bool = True  # False: a one-shot job (a training run)
    process: subprocess.Popen[bytes] | None = None
    state: str = "stopped"  # starting | running | backoff | failed | stopping | stopped | exited
    restarts: int = 0
    crashes: deque[float] = field(default_factory=deque)  # monotonic times of unplanned exits
    next_start: float | None = None
    started_at: str | None = None
    last_exit: int | None = None
    last_exit_at: str | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, env: dict[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- {utc_now().isoformat()} rtml up starts: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
        self.state = "running"
        self.next_start = None
        self.started_at = utc_now().isoformat()

    def exited(self) -> int | None:
        """The exit code once the process has ended (and it is forgotten); None while it runs."""
        if self.process is None:
            return None
        code = self.process.poll()
        if code is None:
            return None
        self.process = None
        self.last_exit = code
        self.last_exit_at = utc_now().isoformat()
        return code

    def plan_restart(self, *, backoff_s: float, backoff_max_s: float, window_s: float, limit: int) -> None:
        """After an unplanned exit: ``backoff`` until the next start, or ``failed`` when it
        crashed more than ``limit`` times within ``window_s``."""
        now = time.monotonic()
        self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > window_s:
            self.crashes.popleft()
        if len(self.crashes) > limit:
            self.state = "failed"
            self.next_start = None
            return
        self.state = "backoff"
        self.next_start = now + min(backoff_s * 2 ** (len(self.crashes) - 1), backoff_max_s)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the child's process group (it and anything it started)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, grace_s: float) -> int | None:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL. Returns the exit code."""
        process = self.process
        if process is None:
            return self.last_exit
        self.state = "stopping"
        self.signal(signal.SIGTERM)
        try:
            code = process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            code = process.wait()
        self.signal(signal.SIGKILL)  # anything of its group that outlived it
        self.process = None
        self.state = "stopped"
        self.last_exit = code
        self.last_exit_at = utc_now().isoformat()
        return code

    def status(self) -> dict[str, Any]:
        next_in = None if self.next_start is None else max(0.0, self.next_start - time.monotonic())
        return {
            "state": self.state,
            "pid": self.pid,
            "restarts": self.restarts,
            "started_at": self.started_at,
            "last_exit": self.last_exit,
            "last_exit_at": self.last_exit_at,
            "next_start_in_s": None if next_in is None else round(next_in, 1),
            "log": str(self.log_path),
        }
