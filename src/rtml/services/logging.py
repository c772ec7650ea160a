"""Structured logs of rtml's services: one JSON object per line.

    log = service_logger("rtml.registry")
    log_event(log, "http_request", method="GET", route="/subjects", status=200)

writes ``{"ts": "...Z", "level": "info", "logger": "rtml.registry", "event":
"http_request", "method": "GET", ...}`` on stderr (or the handler given).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

_FIELDS = "rtml_fields"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line, with the fields given to :func:`log_event`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update(getattr(record, _FIELDS, {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def service_logger(name: str, stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Logger:
    """A logger writing JSON lines; configured once per name (idempotent)."""
    logger = logging.getLogger(name)
    if not any(getattr(h, "_rtml_json", False) for h in logger.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._rtml_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)
    return logger


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with ``fields`` as one JSON line."""
    exc_info = fields.pop("exc_info", None)
    logger.log(level, event, extra={_FIELDS: fields}, exc_info=exc_info)
