"""Where the services' JSON log lines go during the demo: files, so the console shows
progress and results only."""

from __future__ import annotations

import logging

from rtml.project import Project
from rtml.services.logging import service_logger


def file_logger(project: Project, service: str) -> logging.Logger:
    """A JSON logger writing to ``<data_dir>/logs/<service>.log``."""
    path = project.data_dir / "logs" / f"{service}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"rtml.demo.{service}")
    for handler in list(logger.handlers):
        if getattr(handler, "_rtml_json", False):
            logger.removeHandler(handler)
            handler.close()
    return service_logger(logger.name, stream=path.open("a", encoding="utf-8"))
