"""The retraining schedule of ``rtml up``: every ``up.retrain_every``, train every model in a
child process (``python -m rtml.services.supervisor.schedule``, which calls
:func:`rtml.training.train`). The promotion policy decides whether the new version becomes
champion; the server follows the alias by itself.

When the last run started is kept in ``<data_dir>/up/schedule.json``, so a restarted
``rtml up`` keeps the rhythm instead of training at once. With ``up.train_if_no_champion``
one run starts with ``rtml up`` that trains only the models without a champion.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from rtml.project import Project
from rtml.services.logging import log_event, service_logger
from rtml.services.supervisor.children import Child
from rtml.services.supervisor.settings import UpSettings

STATE_FILE = "schedule.json"


def _now_ms() -> int:
    return int(time.time() * 1000)


class RetrainSchedule:
    """Decides when a training run is due and runs one at a time as a child process."""

    def __init__(
        self, project: Project, settings: UpSettings, state_dir: Path, log_dir: Path, logger: logging.Logger
    ) -> None:
        self.project = project
        self.settings = settings
        self.logger = logger
        self.path = state_dir / STATE_FILE
        self.every_ms = settings.seconds("retrain_every") * 1000
        self.state: dict[str, Any] = self._read()
        self.state.setdefault("since_ms", _now_ms())  # the rhythm starts with the first `rtml up`
        self.child: Child | None = None
        self.log_path = log_dir / "train.log"
        self.pending_missing = settings.train_if_no_champion and bool(project.definitions.models)
        self._write()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self) -> None:
        from rtml.services.supervisor.supervisor import write_json

        write_json(self.path, self.state)

    def due_ms(self) -> float | None:
        """When the next scheduled run is due (epoch ms), None when retraining is off."""
        if self.every_ms == float("inf") or not self.project.definitions.models:
            return None
        last = self.state.get("last_started_ms") or self.state["since_ms"]
        return float(last) + self.every_ms

    def tick(self) -> None:
        if self.child is not None:
            code = self.child.exited()
            if code is None:
                return
            self.state.update(last_finished_ms=_now_ms(), last_exit=code)
            self._write()
            self.child.state = "exited"
            log_event(
                self.logger,
                "training_finished",
                level=logging.INFO if code == 0 else logging.ERROR,
                exit_code=code,
                log=str(self.log_path),
            )
            return
        if self.pending_missing:
            self.pending_missing = False
            self._start(only_missing=True)
            return
        due = self.due_ms()
        if due is not None and _now_ms() >= due:
            self._start(only_missing=False)

    def _start(self, *, only_missing: bool) -> None:
        argv = [
            sys.executable,
            "-m",
            "rtml.services.supervisor.schedule",
            "--project",
            str(self.project.root),
        ]
        if only_missing:
            argv.append("--only-missing")
        if self.settings.retrain_trials is not None:
            argv += ["--trials", str(self.settings.retrain_trials)]
        self.child = Child("train", argv, self.log_path, restart=False)
        self.child.start()
        self.state["last_started_ms"] = _now_ms()
        self._write()
        log_event(self.logger, "training_started", pid=self.child.pid, only_missing=only_missing)

    def stop(self, grace_s: float) -> None:
        if self.child is not None and self.child.alive():
            self.child.stop(grace_s)
            self.state.update(last_finished_ms=_now_ms(), last_exit=self.child.last_exit)
            self._write()

    def status(self) -> dict[str, Any]:
        due = self.due_ms()
        return {
            **self.state,
            "retrain_every": self.settings.retrain_every,
            "next_due_ms": None if due is None else int(due),
            "running": self.child is not None and self.child.alive(),
            "pid": None if self.child is None else self.child.pid,
            "log": str(self.log_path),
        }


def train_models(project: Project, *, only_missing: bool, trials: int | None, logger: logging.Logger) -> int:
    """Train each model of ``project`` (with ``only_missing``: those without a champion);
    returns how many failed."""
    from rtml.backends.tracking import open_registry
    from rtml.training import train

    alias = project.config.training.promotion.alias
    failed = 0
    for name in sorted(project.definitions.models):
        if only_missing:
            registry = open_registry(project)
            try:
                champion = registry.alias_version(name, alias)
            finally:
                registry.close()
            if champion is not None:
                log_event(logger, "training_skipped", model=name, reason=f"has a {alias}: v{champion}")
                continue
        try:
            outcome = train(project, name, trials=trials)
        except Exception as exc:  # one model failing must not stop the others
            failed += 1
            log_event(
                logger, "training_failed", level=logging.ERROR, model=name, error=str(exc), exc_info=True
            )
            continue
        summary = outcome.summary()
        log_event(
            logger,
            "trained",
            model=name,
            version=summary["model_version"],
            test=summary["test"],
            champion_before=summary["champion_version_before"],
            promotion=summary["promotion"],
            seconds=round(summary["seconds"], 1),
        )
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One scheduled training run of `rtml up`.")
    parser.add_argument("--project", required=True)
    parser.add_argument("--only-missing", action="store_true")
    parser.add_argument("--trials", type=int, default=None)
    args = parser.parse_args(argv)
    logger = service_logger("rtml.up.train")
    project = Project.load(Path(args.project))
    return (
        1 if train_models(project, only_missing=args.only_missing, trials=args.trials, logger=logger) else 0
    )


if __name__ == "__main__":
    sys.exit(main())
