"""The embedded prediction log: Parquet files, one per flushed batch and model and day.

Layout: ``<path>/<model>/date=<YYYY-MM-DD>/part-<ms>-<n>-<rand>.parquet``. A file is
written under a ``.tmp`` name and renamed, so a reader (``read()``, DuckDB's
``read_parquet('<path>/**/*.parquet')``) sees whole files only. No lock is shared with
the offline store's DuckDB file: the server never opens it.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rtml.backends.prediction_log.base import ARROW_SCHEMA, PredictionRecord, to_arrow
from rtml.backends.prediction_log.config import PREDICTIONS_DIR, ParquetPredictionLogConfig
from rtml.errors import BackendUnavailableError
from rtml.timeutil import from_millis


class ParquetPredictionLog:
    def __init__(self, config: ParquetPredictionLogConfig) -> None:
        self.path = Path(config.path) if config.path is not None else Path(".rtml") / PREDICTIONS_DIR
        self._seq = itertools.count()

    def write(self, records: Sequence[PredictionRecord]) -> None:
        groups: dict[tuple[str, str], list[PredictionRecord]] = defaultdict(list)
        for record in records:
            groups[(record.model, from_millis(record.ts_ms).date().isoformat())].append(record)
        for (model, day), rows in groups.items():
            folder = self.path / model / f"date={day}"
            name = f"part-{rows[0].ts_ms}-{next(self._seq):06d}-{secrets.token_hex(4)}.parquet"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                tmp = folder / f".{name}.tmp"
                pq.write_table(to_arrow(rows), tmp, compression="zstd")
                os.replace(tmp, folder / name)
            except OSError as exc:
                raise BackendUnavailableError(
                    f"cannot write the prediction log under {folder}: {exc}. "
                    "Fix: make the directory writable, or free disk space"
                ) from exc

    def read(self, model: str | None = None) -> pa.Table:
        root = self.path / model if model is not None else self.path
        files = sorted(root.glob("**/*.parquet")) if root.is_dir() else []
        if not files:
            return ARROW_SCHEMA.empty_table()
        tables = [pq.read_table(f, schema=ARROW_SCHEMA) for f in files]
        return pa.concat_tables(tables).sort_by([("ts", "ascending"), ("request_id", "ascending")])

    def close(self) -> None:
        pass
