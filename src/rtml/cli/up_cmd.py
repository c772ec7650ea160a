"""``rtml up``: the whole long-running system of a project, supervised in one command."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import typer

from rtml.cli.common import ProjectOption, console, open_project
from rtml.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up(
        project_dir: Path = ProjectOption,
        no_server: bool = typer.Option(False, "--no-server", help="Run no HTTP server."),
        no_retrain: bool = typer.Option(False, "--no-retrain", help="Run no retraining schedule."),
        port: int | None = typer.Option(
            None, "--port", help="Server port (default: server.port of rtml.yaml, 8000)."
        ),
    ) -> None:
        """Run the validator, the engine, the server (with /ui), the monitor and the
        retraining schedule, each as a child process restarted when it crashes; logs in
        <data_dir>/logs/, state in <data_dir>/up/status.json. Ctrl-C stops them all (in
        reverse order); run it again and every service resumes where it left off.
        See docs/up.md."""
        from rtml.services.supervisor.supervisor import Supervisor, logs_dir, reap_orphans, status_path

        project = open_project(project_dir)
        _refuse_second(status_path(project))
        supervisor = Supervisor(project, server=not no_server, retrain=not no_retrain, port=port)
        reap_orphans(project, supervisor.logger)
        names = ", ".join(c.name for c in supervisor.children)
        console.print(f"rtml up: project [bold]{project.config.project}[/]: {names}")
        if any(c.name == "server" for c in supervisor.children):
            host = project.config.server.host
            console.print(f"server on http://{host}:{supervisor.port} (status page: /ui)")
        console.print(f"logs in {logs_dir(project)}; Ctrl-C to stop")

        def handler(signum: int, _frame: FrameType | None) -> None:
            supervisor.stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, handler)
        code = supervisor.run()
        failed = [c.name for c in supervisor.children if c.state == "failed"]
        if failed:
            console.print(f"[red]given up after a crash loop: {', '.join(failed)} (see their logs)")
        console.print("rtml up: stopped")
        raise typer.Exit(code)


def _refuse_second(path: Path) -> None:
    """Refuse to start while another ``rtml up`` of the project runs."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    pid = old.get("pid")
    if old.get("state") == "stopped" or not isinstance(pid, int) or pid == os.getpid():
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    args = cmdline.split(b"\0")
    if b"up" in args or b"rtml.cli.up_cmd" in args:
        raise ConfigError(
            f"rtml up already runs for this project (pid {pid}, {path}). Fix: stop it first (Ctrl-C or "
            f"kill -TERM {pid})"
        )


if __name__ == "__main__":  # `python -m rtml.cli.up_cmd ...` before main.py registers it
    from rtml.cli.main import app as _app
    from rtml.cli.main import main as _main

    if not any(c.name == "up" for c in _app.registered_commands):
        register(_app)
    sys.argv.insert(1, "up")
    _main()
