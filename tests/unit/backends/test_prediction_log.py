"""The prediction log: each backend writes and reads back what was served; the server's
queue writes in batches off the request path, drops (and counts) what does not fit, and
retries a failing backend.

The PostgreSQL backend runs against the real server of scripts/services.sh (or
``RTML_TEST_PG_URL``); it fails, never skips, when that server is down.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import psycopg
import pytest
from prometheus_client import CollectorRegistry

from rtml.backends.offline_store.config import DuckDbOfflineStoreConfig, PostgresOfflineStoreConfig
from rtml.backends.prediction_log import PredictionLog, PredictionRecord
from rtml.backends.prediction_log.config import (
    MemoryPredictionLogConfig,
    ParquetPredictionLogConfig,
    PostgresPredictionLogConfig,
)
from rtml.backends.prediction_log.factory import open_prediction_log, resolve_config
from rtml.backends.prediction_log.memory import MemoryPredictionLog
from rtml.errors import BackendUnavailableError
from rtml.services.server.prediction_log import PredictionLogger
from rtml.services.server.settings import PredictionLogSettings

PG_URL = os.environ.get("RTML_TEST_PG_URL", "postgresql://rtml:rtml@127.0.0.1:5432/rtml")
DAY = 86_400_000
T0 = 1_570_000_000_000  # 2019-10-02T07:06:40Z


def record(i: int, *, model: str = "m", ts_ms: int = T0, score: float = 0.5) -> PredictionRecord:
    return PredictionRecord(
        request_id=f"r{i:04d}",
        model=model,
        version=str(1 + i % 2),
        ts_ms=ts_ms + i,
        keys={"user_id": i, "product_id": 10 * i},
        request={"price": None if i % 3 == 0 else 1.5 * i},
        features={"v__count_1h": i, "v__mean_7d": None if i % 2 else float(i), "ratio": float("nan")},
        missing=["v"] if i % 2 else [],
        score=score,
    )


@pytest.fixture(params=["memory", "parquet", pytest.param("postgres", marks=pytest.mark.integration)])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PredictionLog]:
    if request.param == "memory":
        opened: PredictionLog = open_prediction_log(MemoryPredictionLogConfig())
        yield opened
        return
    if request.param == "parquet":
        yield open_prediction_log(ParquetPredictionLogConfig(path=tmp_path / "predictions"))
        return
    namespace = f"rtml_test_{uuid.uuid4().hex[:10]}"
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL at {PG_URL} is not reachable ({exc}): start it with `make services` "
            "(bash scripts/services.sh start postgres) or set RTML_TEST_PG_URL",
            pytrace=False,
        )
    opened = open_prediction_log(PostgresPredictionLogConfig(url=PG_URL, namespace=namespace))
    yield opened
    opened.close()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {namespace} CASCADE")


def test_rows_read_back_as_written(log: PredictionLog) -> None:
    assert log.read().num_rows == 0
    log.write([record(i) for i in range(5)])
    log.write([record(i, model="other", ts_ms=T0 + DAY) for i in range(5, 8)])
    table = log.read()
    assert table.column_names == [
        "request_id", "model", "version", "ts", "keys", "request", "features", "missing", "score"
    ]  # fmt: skip
    rows = table.to_pylist()
    assert [r["request_id"] for r in rows] == [f"r{i:04d}" for i in range(8)]
    first = rows[1]
    assert first["model"] == "m" and first["version"] == "2" and first["score"] == 0.5
    assert first["ts"] == datetime.fromtimestamp((T0 + 1) / 1000, UTC)
    assert json.loads(first["keys"]) == {"user_id": 1, "product_id": 10}
    assert json.loads(first["request"]) == {"price": 1.5}
    assert json.loads(first["features"]) == {"v__count_1h": 1, "v__mean_7d": None, "ratio": None}
    assert json.loads(first["missing"]) == ["v"]
    assert [r["request_id"] for r in log.read("other").to_pylist()] == ["r0005", "r0006", "r0007"]


def test_parquet_files_are_per_model_and_day_and_duckdb_reads_them(tmp_path: Path) -> None:
    log = open_prediction_log(ParquetPredictionLogConfig(path=tmp_path / "p"))
    log.write([record(1), record(2, model="other"), record(3, ts_ms=T0 + DAY)])
    files = sorted(str(p.relative_to(tmp_path / "p").parent) for p in (tmp_path / "p").glob("**/*.parquet"))
    assert files == ["m/date=2019-10-02", "m/date=2019-10-03", "other/date=2019-10-02"]
    assert not list((tmp_path / "p").glob("**/*.tmp"))
    glob = str(tmp_path / "p" / "**" / "*.parquet")
    got = duckdb.sql(
        f"SELECT request_id, json_extract(features, '$.v__count_1h')::INT AS c, keys->>'user_id' AS u "
        f"FROM read_parquet('{glob}') ORDER BY request_id"
    ).fetchall()
    assert got == [("r0001", 1, "1"), ("r0002", 2, "2"), ("r0003", 3, "3")]


def test_the_default_log_follows_the_offline_store(tmp_path: Path) -> None:
    parquet = resolve_config(None, offline_store=DuckDbOfflineStoreConfig(), data_dir=tmp_path)
    assert parquet == ParquetPredictionLogConfig(path=tmp_path / "predictions")
    pg = PostgresOfflineStoreConfig(url="postgresql://u:p@db:5432/x", namespace="wh")
    assert resolve_config(None, offline_store=pg, data_dir=tmp_path) == PostgresPredictionLogConfig(
        url="postgresql://u:p@db:5432/x", namespace="wh"
    )
    explicit = PostgresPredictionLogConfig(table="served")
    assert resolve_config(explicit, offline_store=pg, data_dir=tmp_path).url == "postgresql://u:p@db:5432/x"


# -- the server's queue -------------------------------------------------------------------


def logger_for(backend: PredictionLog, **settings: object) -> tuple[PredictionLogger, CollectorRegistry]:
    metrics = CollectorRegistry()
    writer = PredictionLogger(
        lambda: backend,
        PredictionLogSettings(**{"flush_interval_s": 0.05, **settings}),  # type: ignore[arg-type]
        logger=logging.getLogger("test.prediction_log"),
        registry=metrics,
    )
    return writer, metrics


def value(metrics: CollectorRegistry, name: str, **labels: str) -> float:
    got = metrics.get_sample_value(name, labels)
    return 0.0 if got is None else got


class BlockingLog(MemoryPredictionLog):
    """Writes wait for ``release``: the writer thread is stuck, the queue fills."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.batches: list[int] = []

    def write(self, records: list[PredictionRecord]) -> None:  # type: ignore[override]
        self.release.wait(10)
        self.batches.append(len(records))
        super().write(records)


def test_rows_are_written_in_batches_of_at_most_batch_size() -> None:
    backend = BlockingLog()
    backend.release.set()
    writer, metrics = logger_for(backend, batch_size=4, flush_interval_s=5)
    writer.start()
    writer.submit([record(i) for i in range(10)])
    assert writer.flush(10)
    writer.close()
    assert sum(backend.batches) == 10 and max(backend.batches) <= 4
    assert [r.request_id for r in backend.records] == [f"r{i:04d}" for i in range(10)]
    assert value(metrics, "rtml_prediction_log_written_total") == 10


def test_a_partial_batch_is_written_after_the_flush_interval() -> None:
    backend = MemoryPredictionLog()
    writer, _ = logger_for(backend, batch_size=1000, flush_interval_s=0.1)
    writer.start()
    writer.submit([record(1)])
    deadline = time.monotonic() + 10
    while not backend.records:
        assert time.monotonic() < deadline, "a lone row was never written"
        time.sleep(0.01)
    writer.close()


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    backend = BlockingLog()
    writer, metrics = logger_for(backend, batch_size=2, queue_size=3)
    writer.start()
    writer.submit([record(0), record(1)])  # taken by the writer, which now waits
    deadline = time.monotonic() + 10
    while value(metrics, "rtml_prediction_log_queued") != 2 or writer._queue:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    accepted = writer.submit([record(i) for i in range(2, 7)])
    assert time.monotonic() - started < 1.0  # returned at once: nothing waited for the writer
    assert accepted == 3
    assert value(metrics, "rtml_prediction_log_dropped_total", reason="queue_full") == 2
    backend.release.set()
    assert writer.flush(10)
    writer.close()
    assert [r.request_id for r in backend.records] == [f"r{i:04d}" for i in range(5)]


def test_a_failing_backend_is_retried_and_nothing_is_lost() -> None:
    backend = MemoryPredictionLog()
    backend.fail = BackendUnavailableError("down")
    writer, metrics = logger_for(backend, batch_size=10)
    writer.start()
    writer.submit([record(i) for i in range(3)])
    deadline = time.monotonic() + 10
    while value(metrics, "rtml_prediction_log_write_failures_total") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not backend.records
    backend.fail = None
    assert writer.flush(10)
    writer.close()
    assert len(backend.records) == 3
    assert value(metrics, "rtml_prediction_log_dropped_total", reason="shutdown") == 0


def test_what_cannot_be_written_at_shutdown_is_counted() -> None:
    backend = MemoryPredictionLog()
    backend.fail = BackendUnavailableError("down")
    writer, metrics = logger_for(backend, batch_size=10)
    writer.start()
    writer.submit([record(i) for i in range(4)])
    writer.close(timeout=5)
    assert value(metrics, "rtml_prediction_log_dropped_total", reason="shutdown") == 4
