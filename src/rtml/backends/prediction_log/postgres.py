"""The prediction log on PostgreSQL: a ``predictions`` table appended with ``COPY``.

Table ``<namespace>.<table>`` (default ``rtml_offline.predictions``): ``request_id TEXT``,
``model TEXT``, ``version TEXT``, ``ts TIMESTAMPTZ``, ``keys``/``request``/``features``/
``missing JSONB``, ``score DOUBLE PRECISION``; indexed on ``(model, ts)``. No primary key:
a client may send its own request id twice, and a log keeps what was served.
Labels join on the keys and ``ts``, e.g. ``(keys->>'user_id')::bigint``.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
import pyarrow as pa

from rtml.backends.postgres_support import PgSession
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
        self._created = False
        self._pg = PgSession(
            self._url,
            connect_timeout_s=config.connect_timeout_s,
            statement_timeout_s=config.statement_timeout_s,
            what="prediction log",
            setting="server.predict.log.backend.url",
            error=PredictionLogError,
            on_connect=self._forget_table,
            on_error=self._forget_table,
        )

    def write(self, records: Sequence[PredictionRecord]) -> None:
        if not records:
            return
        with self._pg.transaction() as cur:
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
        with self._pg.transaction() as cur:
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
        self._pg.close()

    def _forget_table(self, *_: object) -> None:
        """A new connection or a failed statement: check the table again before writing."""
        self._created = False

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
