"""``Supervisor``: the components of ``rtml up`` as child processes, kept running.

- start the components in order (validator, engine, indexer, server, monitor), each a child
  process with its log in ``<data_dir>/logs/<name>.log`` (:mod:`.children`);
- every tick: restart a child that exited (exponential backoff; a crash loop gives the
  component up), run the retraining schedule (:mod:`.schedule`), add up the validator's
  and the engine's batch log lines, and write ``<data_dir>/up/status.json``;
- on :meth:`Supervisor.stop` (SIGINT/SIGTERM in ``rtml up``): stop the children in the
  reverse order, each with ``grace_period`` before SIGKILL.

Resuming after a restart is the services' own: the validator's consumer group offsets, the
engine's checkpoint, the schedule's state file. Nothing here holds state that matters.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from rtml.backends.dead_letter.config import KafkaDeadLetterConfig
from rtml.project import Project
from rtml.services.logging import log_event, service_logger
from rtml.services.supervisor.children import Child, rtml_argv
from rtml.services.supervisor.schedule import RetrainSchedule
from rtml.services.supervisor.settings import ALL_COMPONENTS, UpSettings
from rtml.timeutil import utc_now

LOGGER = "rtml.up"
TICK_S = 0.2
STATUS_EVERY_S = 1.0


def up_settings(project: Project) -> UpSettings:
    """``up`` of rtml.yaml (the defaults while the config has no such section)."""
    settings = getattr(project.config, "up", None)
    return settings if isinstance(settings, UpSettings) else UpSettings()


def up_dir(project: Project) -> Path:
    return project.root / project.data_dir / "up"


def logs_dir(project: Project) -> Path:
    return project.root / project.data_dir / "logs"


def status_path(project: Project) -> Path:
    return up_dir(project) / "status.json"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` atomically (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


class LogTally:
    """Sums of the ``batch`` JSON lines a service appended to its log since ``rtml up`` started."""

    FIELDS = ("events", "valid", "invalid", "duplicates", "late", "dropped")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.sums: dict[str, int] = {}
        self.last: dict[str, Any] = {}
        self._rest = b""

    def update(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        for raw in lines:
            if not raw.startswith(b"{"):
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if line.get("event") != "batch":
                continue
            for name in self.FIELDS:
                value = line.get(name)
                if isinstance(value, int):
                    self.sums[name] = self.sums.get(name, 0) + value
            self.last = {k: v for k, v in line.items() if k in ("ts", "watermark_ms", "lag")}

    def status(self) -> dict[str, Any]:
        return {"since_up": dict(self.sums), "last_batch": dict(self.last)}


class Supervisor:
    """Runs ``project``'s components until :meth:`stop`. ``server`` False leaves the server
    out, ``retrain`` False the schedule; ``port`` overrides ``server.port``."""

    def __init__(
        self,
        project: Project,
        *,
        settings: UpSettings | None = None,
        server: bool = True,
        retrain: bool = True,
        port: int | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.project = project
        self.settings = settings or up_settings(project)
        self.logger = logger or service_logger(LOGGER)
        self.port = port if port is not None else project.config.server.port
        self.children = self._children(server)
        self.tallies = {
            c.name: LogTally(c.log_path) for c in self.children if c.name in ("validator", "engine")
        }
        self.schedule = (
            RetrainSchedule(project, self.settings, up_dir(project), logs_dir(project), self.logger)
            if retrain
            else None
        )
        self._stop = threading.Event()
        self.started_at = utc_now().isoformat()
        self.state = "starting"
        self._status_at = 0.0

    def _children(self, server: bool) -> list[Child]:
        wanted = self.settings.components or list(ALL_COMPONENTS)
        root = str(self.project.root)
        argv: dict[str, list[str]] = {
            "validator": rtml_argv("run", "validator", "--project", root),
            "engine": rtml_argv("run", "engine", "--project", root),
            "indexer": rtml_argv("run", "indexer", "--project", root),
            "server": rtml_argv("serve", "--project", root, "--port", str(self.port)),
            "monitor": [
                *rtml_argv()[:2],
                "rtml.services.supervisor.monitor",
                "--project",
                root,
            ],
        }
        dead_letter = self.project.config.dead_letter
        has_index = isinstance(dead_letter, KafkaDeadLetterConfig) and dead_letter.index is not None
        names = [
            name
            for name in ALL_COMPONENTS
            if name in wanted
            and (name != "indexer" or has_index)
            and (name != "server" or server)
            and (name != "monitor" or self.project.definitions.models)
        ]
        logs = logs_dir(self.project)
        return [Child(name, argv[name], logs / f"{name}.log") for name in names]

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, supervise until :meth:`stop`, stop everything. Returns 0, or 1
        when a component was given up after a crash loop."""
        log_event(
            self.logger,
            "up_started",
            project=self.project.config.project,
            components=[c.name for c in self.children],
            logs=str(logs_dir(self.project)),
        )
        try:
            for child in self.children:
                child.start()
                log_event(self.logger, "component_started", component=child.name, pid=child.pid)
            self.state = "running"
            while not self._stop.is_set():
                self.tick()
                self._stop.wait(TICK_S)
        finally:
            self.shutdown()
        failed = [c.name for c in self.children if c.state == "failed"]
        return 1 if failed else 0

    def stop(self) -> None:
        self._stop.set()

    def tick(self) -> None:
        s = self.settings
        for child in self.children:
            code = child.exited()
            if code is not None and not self._stop.is_set():
                child.plan_restart(
                    backoff_s=s.seconds("restart_backoff"),
                    backoff_max_s=s.seconds("restart_backoff_max"),
                    window_s=s.seconds("crash_loop_window"),
                    limit=s.crash_loop_restarts,
                )
                level = logging.ERROR if child.state == "failed" else logging.WARNING
                log_event(
                    self.logger,
                    "component_given_up" if child.state == "failed" else "component_exited",
                    level=level,
                    component=child.name,
                    exit_code=code,
                    crashes_in_window=len(child.crashes),
                    restart_in_s=child.status()["next_start_in_s"],
                    log=str(child.log_path),
                )
            if (
                child.state == "backoff"
                and child.next_start is not None
                and time.monotonic() >= child.next_start
            ):
                child.restarts += 1
                child.start()
                log_event(
                    self.logger,
                    "component_restarted",
                    component=child.name,
                    pid=child.pid,
                    restarts=child.restarts,
                )
        if self.schedule is not None:
            self.schedule.tick()
        for tally in self.tallies.values():
            tally.update()
        if time.monotonic() - self._status_at >= STATUS_EVERY_S:
            self.write_status()

    def shutdown(self) -> None:
        self.state = "stopping"
        self.write_status()
        grace = self.settings.seconds("grace_period")
        if self.schedule is not None:
            self.schedule.stop(grace)
        for child in reversed(self.children):
            if child.process is None:
                child.state = "stopped" if child.state != "failed" else "failed"
                continue
            code = child.stop(grace)
            log_event(self.logger, "component_stopped", component=child.name, exit_code=code)
        for tally in self.tallies.values():
            tally.update()
        self.state = "stopped"
        self.write_status()
        log_event(self.logger, "up_stopped", project=self.project.config.project)

    def write_status(self) -> None:
        self._status_at = time.monotonic()
        components = {}
        for child in self.children:
            components[child.name] = child.status()
            if child.name in self.tallies:
                components[child.name].update(self.tallies[child.name].status())
        write_json(
            status_path(self.project),
            {
                "project": self.project.config.project,
                "state": self.state,
                "pid": os.getpid(),
                "started_at": self.started_at,
                "updated_at": utc_now().isoformat(),
                "server_port": self.port if any(c.name == "server" for c in self.children) else None,
                "components": components,
                "training": None if self.schedule is None else self.schedule.status(),
            },
        )


def reap_orphans(project: Project, logger: logging.Logger) -> int:
    """Stop the children a previous ``rtml up`` of this project left running (it was killed
    with SIGKILL on a platform without ``PR_SET_PDEATHSIG``). Returns how many."""
    try:
        old = json.loads(status_path(project).read_text())
    except (OSError, ValueError):
        return 0
    if old.get("state") == "stopped" or pid_alive(old.get("pid")):
        return 0
    reaped = 0
    root = str(project.root).encode()
    for name, component in (old.get("components") or {}).items():
        pid = component.get("pid")
        if not isinstance(pid, int) or not pid_alive(pid):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if root in cmdline:
            os.killpg(pid, signal.SIGTERM)
            log_event(logger, "orphan_stopped", level=logging.WARNING, component=name, pid=pid)
            reaped += 1
    return reaped


def pid_alive(pid: object) -> bool:
    """Whether process ``pid`` exists (an int; anything else: no)."""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
