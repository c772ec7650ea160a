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
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pyarrow as pa

from rtml.backends.prediction_log.base import ARROW_SCHEMA, PredictionRecord, to_json
from rtml.backends.prediction_log.config import PostgresPredictionLogConfig
from rtml.errors import BackendUnavailableError, RtmlError
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
        self._where = _redact(self._url)

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
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except psycopg.OperationalError as exc:
                self._drop()
                raise BackendUnavailableError(
                    f"the PostgreSQL prediction log at {self._where} is unavailable ({_first_line(exc)}). "
                    "Fix: start PostgreSQL (bash scripts/services.sh start postgres) or correct "
                    "server.predict.log.backend.url"
                ) from exc
            except psycopg.Error as exc:
                if self._conn is not None and self._conn.broken:
                    self._drop()
                self._created = False
                raise PredictionLogError(
                    f"the PostgreSQL prediction log at {self._where} failed: {_first_line(exc)}"
                ) from exc

    def _connection(self) -> psycopg.Connection:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._drop()
        timeout_ms = int(self._config.statement_timeout_s * 1000)
        self._conn = psycopg.connect(
            self._url,
            autocommit=True,
            connect_timeout=self._config.connect_timeout_s,
            options=f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        )
        self._created = False
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
