"""The prediction log on PostgreSQL: a ``predictions`` table appended with ``COPY``.

Table ``<namespace>.<table>`` (default ``rtml_offline.predictions``): ``request_id TEXT``,
``model TEXT``, ``version TEXT``, ``ts TIMESTAMPTZ``, ``keys``/``request``/``features``/
``missing JSONB``, ``score DOUBLE PRECISION``; indexed on ``(model, ts)``. No primary key:
a client may send its own request id twice, and a log keeps what was served.
Labels join on the keys and ``ts``, e.g. ``(keys->>'user_id')::bigint``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
import pyarrow as pa

from rtml.backends.postgres_support import close_quietly, connect, redact, translated_errors
from rtml.backends.prediction_log.base import ARROW_SCHEMA, PredictionRecord, to_json
from rtml.backends.prediction_log.config import PostgresPredictionLogConfig
from rtml.errors import RtmlError
from rtml.timeutil import from_millis

DEFAULT_URL = "postgresql://rtml:rtml@127.0.0.1:5432/rtml"
_LOCK_KEY = 0x72746D70  # "rtmp": serializes the CREATE TABLE across processes


class PredictionLogError(RtmlError):
    """PostgreSQL refused a prediction log statement."""


class PostgresPredictionLog:
    def __init__(self, config: PostgresPredictionLogConfig) -> None:
        self._config = config
        self._url = config.url or DEFAULT_URL
        self.table = f"{config.namespace}.{config.table}"
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._created = False
        self._where = redact(self._url)

    def write(self, records: Sequence[PredictionRecord]) -> None:
        if not records:
            return
        with self._transaction() as cur:
            self._ensure(cur)
            columns = "request_id, model, version, ts, keys, request, features, missing, score"
            with cur.copy(f"COPY {self.table} ({columns}) FROM STDIN") as copy:
                for r in records:
                    copy.write_row(
                        (
                            r.request_id,
                            r.model,
                            r.version,
                            from_millis(r.ts_ms),
                            to_json(r.keys),
                            to_json(r.request),
                            to_json(r.features),
                            to_json(list(r.missing)),
                            r.score,
                        )
                    )

    def read(self, model: str | None = None) -> pa.Table:
        with self._transaction() as cur:
            self._ensure(cur)
            where, args = ("WHERE model = %s", [model]) if model is not None else ("", [])
            cur.execute(
                "SELECT request_id, model, version, ts, keys::text, request::text, features::text, "
                f"missing::text, score FROM {self.table} {where} ORDER BY ts, request_id",
                args,
            )
            rows = cur.fetchall()
        columns: list[Sequence[object]] = (
            list(zip(*rows, strict=True)) if rows else [() for _ in ARROW_SCHEMA]
        )
        return pa.table(
            {
                field.name: pa.array(list(col), field.type)
                for field, col in zip(ARROW_SCHEMA, columns, strict=True)
            },
            schema=ARROW_SCHEMA,
        )

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- connection -------------------------------------------------------------------

    def _ensure(self, cur: psycopg.Cursor) -> None:
        if self._created:
            return
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self._config.namespace}")
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (request_id TEXT NOT NULL, model TEXT NOT NULL, "
            "version TEXT NOT NULL, ts TIMESTAMPTZ NOT NULL, keys JSONB NOT NULL, request JSONB NOT NULL, "
            "features JSONB NOT NULL, missing JSONB NOT NULL, score DOUBLE PRECISION)"
        )
        cur.execute(f"CREATE INDEX IF NOT EXISTS {self._config.table}_model_ts ON {self.table} (model, ts)")
        self._created = True

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor]:
        with (
            self._lock,
            translated_errors(
                what="prediction log",
                where=self._where,
                setting="server.predict.log.backend.url",
                error=PredictionLogError,
                on_failure=self._failed,
            ),
        ):
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                yield cur

    def _failed(self, unavailable: bool) -> None:
        if unavailable or (self._conn is not None and self._conn.broken):
            self._drop()
        if not unavailable:
            self._created = False

    def _connection(self) -> psycopg.Connection:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._drop()
        self._conn = connect(
            self._url,
            connect_timeout_s=self._config.connect_timeout_s,
            statement_timeout_s=self._config.statement_timeout_s,
        )
        self._created = False
        return self._conn

    def _drop(self) -> None:
        close_quietly(self._conn)
        self._conn = None
