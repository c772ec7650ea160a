"""An in-process prediction log for tests (``type: memory``)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pyarrow as pa

from rtml.backends.prediction_log.base import ARROW_SCHEMA, PredictionRecord, to_arrow
from rtml.backends.prediction_log.config import MemoryPredictionLogConfig

_SHARED: dict[str, list[PredictionRecord]] = {}
_LOCK = threading.Lock()


class MemoryPredictionLog:
    def __init__(self, config: MemoryPredictionLogConfig | None = None) -> None:
        name = config.name if config is not None else None
        with _LOCK:
            self.records: list[PredictionRecord] = _SHARED.setdefault(name, []) if name else []
        self.fail: Exception | None = None  # set by a test: write() raises it

    def write(self, records: Sequence[PredictionRecord]) -> None:
        if self.fail is not None:
            raise self.fail
        with _LOCK:
            self.records.extend(records)

    def read(self, model: str | None = None) -> pa.Table:
        with _LOCK:
            rows = [r for r in self.records if model is None or r.model == model]
        table = to_arrow(rows) if rows else ARROW_SCHEMA.empty_table()
        return table.sort_by([("ts", "ascending"), ("request_id", "ascending")])

    def close(self) -> None:
        pass
