"""Helpers of the ``rtml up`` tests (embedded in tests/integration/test_up.py, at scale in
tests/e2e/test_up_scale.py): the real ``rtml up`` subprocess, its status file, waiting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from rtml.datagen import to_log_record
from rtml.project import RAW_EVENTS, Project

GRACE_S = 40  # up.grace_period's default (20 s) per child, with room for a slow machine


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def produce(project: Project, lines: list[bytes]) -> None:
    log = project.event_log()
    try:
        log.produce(project.topic(RAW_EVENTS), [to_log_record(line) for line in lines])
        log.flush()
    finally:
        log.close()


def status(project: Project) -> dict[str, Any]:
    path = project.root / project.data_dir / "up" / "status.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def wait(
    check: Callable[[], Any], timeout: float, what: str, up: subprocess.Popen[bytes] | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if up is not None and up.poll() is not None:
            raise AssertionError(f"rtml up ended (exit {up.returncode}) while waiting for {what}")
        try:
            got = check()
        except (httpx.HTTPError, OSError, KeyError, TypeError):
            got = None
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


def start_up(
    project: Project, out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    # `python -m rtml.cli.up_cmd` is `rtml up` (it registers the command when main.py does not).
    argv = [sys.executable, "-m", "rtml.cli.up_cmd", "--project", str(project.root), *extra]
    with out.open("ab") as f:
        return subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env)  # noqa: S603


def stop_up(up: subprocess.Popen[bytes], out: Path) -> int:
    up.send_signal(signal.SIGINT)
    try:
        return up.wait(GRACE_S * 2)
    except subprocess.TimeoutExpired:
        up.kill()
        raise AssertionError(f"rtml up did not stop on SIGINT:\n{out.read_text()[-4000:]}") from None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent, rtml up, has exited and init reaps it).
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def since_up(project: Project, component: str) -> int:
    return int(status(project)["components"][component]["since_up"].get("events", 0))


def kill_engine_and_wait(project: Project, up: subprocess.Popen[bytes]) -> None:
    """``kill -9`` the engine child; the supervisor must start a new one (the old exit code
    recorded)."""
    engine = status(project)["components"]["engine"]
    os.kill(engine["pid"], signal.SIGKILL)
    restarted = wait(
        lambda: (
            (e := status(project)["components"]["engine"])["restarts"] >= 1
            and e["state"] == "running"
            and e["pid"] != engine["pid"]
            and e
        ),
        30,
        "the engine restarted",
        up,
    )
    assert restarted["last_exit"] == -signal.SIGKILL


def stop_and_check(project: Project, up: subprocess.Popen[bytes], out: Path) -> None:
    """SIGINT to ``rtml up``: exit 0, ``state: stopped`` and none of its children left."""
    children = [c["pid"] for c in status(project)["components"].values() if c["pid"]]
    assert stop_up(up, out) == 0, out.read_text()[-4000:]
    assert status(project)["state"] == "stopped"
    assert not [pid for pid in children if alive(pid)]
