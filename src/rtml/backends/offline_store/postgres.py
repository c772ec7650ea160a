"""The offline store on PostgreSQL (psycopg 3), in its own PostgreSQL schema.

The connection is opened lazily and reopened after a failure; a server that is down
answers :class:`~rtml.errors.BackendUnavailableError` within ``connect_timeout_s``, and a
statement never runs past ``statement_timeout_s`` (``build_timeout_s`` for a training
set). Appends COPY the batch (one CSV payload written by Arrow) into a temporary table
and ``INSERT ... ON CONFLICT (event_id) DO NOTHING`` from it, in one transaction.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import ClassVar

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv

from rtml.backends.offline_store import arrow
from rtml.backends.offline_store.base import OfflineStoreError, Progress, SourceStats, StoredEvent
from rtml.backends.offline_store.config import PostgresOfflineStoreConfig
from rtml.backends.postgres_support import PgSession
from rtml.core.pit import (
    SPINE_ROW,
    SPINE_TABLE,
    TS_MS,
    EventTable,
    SpineSource,
    TrainingSetPlan,
    render_training_set,
)

_LOCK_KEY = 0x72746D6F  # "rtmo": serializes DDL across processes sharing the database
_SPINE_TYPES = {"string": "TEXT", "integer": "BIGINT", "number": "DOUBLE PRECISION", "boolean": "BOOLEAN"}
_REQUEST_TYPES = {"double": "DOUBLE PRECISION", "bigint": "BIGINT", "string": "TEXT", "boolean": "BOOLEAN"}


class PostgresOfflineStore:
    """:class:`~rtml.backends.offline_store.base.OfflineStore` on PostgreSQL."""

    dialect: ClassVar[str] = "postgres"

    def __init__(self, config: PostgresOfflineStoreConfig) -> None:
        self._config = config
        self._ns = config.namespace  # matches an identifier pattern (the config checks it)
        self._created: set[str] = set()
        self._pg = PgSession(
            config.url,
            connect_timeout_s=config.connect_timeout_s,
            statement_timeout_s=config.statement_timeout_s,
            what="offline store",
            setting="offline_store.url",
            error=OfflineStoreError,
            on_error=self._created.clear,  # a failed DDL transaction may have created nothing
        )

    def qualified(self, table: EventTable) -> str:
        return f"{self._ns}.{table.name}"

    # -- the port ---------------------------------------------------------------------
    def append(self, table: EventTable, events: Sequence[StoredEvent]) -> int:
        if not events:
            return 0
        batch = arrow.events_table(table, events).select(list(table.column_names))
        columns = ", ".join(f'"{c}"' for c in table.column_names)
        # One CSV payload written by Arrow (C++), not a Python call per row: NULL is an
        # unquoted empty field, an empty string a quoted one (PostgreSQL's CSV rules).
        payload = io.BytesIO()
        pa_csv.write_csv(batch, payload, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
        with self._pg.transaction() as cur:
            self._ensure(cur, table)
            cur.execute(f"CREATE TEMP TABLE rtml_batch (LIKE {self.qualified(table)}) ON COMMIT DROP")
            with cur.copy(f"COPY rtml_batch ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(payload.getbuffer())
            cur.execute(
                f"INSERT INTO {self.qualified(table)} ({columns}) SELECT {columns} FROM rtml_batch "
                "ON CONFLICT (event_id) DO NOTHING"
            )
            return max(cur.rowcount, 0)

    def read(self, table: EventTable, *, start_ms: int | None = None, end_ms: int | None = None) -> pa.Table:
        clauses: list[str] = []
        args: list[int] = []
        if start_ms is not None:
            clauses.append(f"{TS_MS} >= %s")
            args.append(start_ms)
        if end_ms is not None:
            clauses.append(f"{TS_MS} < %s")
            args.append(end_ms)
        where = "WHERE " + " AND ".join(clauses) if clauses else ""
        columns = ", ".join(f'"{c}"' for c in table.column_names)
        with self._pg.transaction() as cur:
            self._ensure(cur, table)
            cur.execute(
                f"SELECT {columns} FROM {self.qualified(table)} {where} ORDER BY {TS_MS}, event_id", args
            )
            rows = cur.fetchall()
        return pa.table(
            {
                name: pa.array([r[i] for r in rows], _arrow_of(table, name))
                for i, name in enumerate(table.column_names)
            }
        )

    def stats(self, table: EventTable) -> SourceStats:
        with self._pg.transaction() as cur:
            self._ensure(cur, table)
            cur.execute(f"SELECT COUNT(*), MIN({TS_MS}), MAX({TS_MS}) FROM {self.qualified(table)}")
            row = cur.fetchone()
        assert row is not None
        return SourceStats(table.source, int(row[0]), row[1], row[2])

    def training_set(
        self,
        plan: TrainingSetPlan,
        *,
        spine: pa.Table | None = None,
        include_incomplete: bool = False,
        progress: Progress | None = None,
    ) -> pa.Table:
        source = SpineSource()
        if spine is not None:
            request = tuple(n for n in plan.request if n in spine.column_names and n not in plan.label.keys)
            source = SpineSource(kind="table", request_columns=request)
        tables = {g.table.source: self.qualified(g.table) for g in plan.groups}
        tables[plan.label.table.source] = self.qualified(plan.label.table)
        sql = render_training_set(
            plan, "postgres", tables=tables, spine=source, include_incomplete=include_incomplete
        )
        timeout_ms = int(self._config.build_timeout_s * 1000)
        with self._pg.transaction() as cur:
            for table in {plan.label.table, *(g.table for g in plan.groups)}:
                self._ensure(cur, table)
            cur.execute(f"SET LOCAL statement_timeout = {timeout_ms}")
            if spine is not None:
                self._bind_spine(cur, spine, plan, source)
            cur.execute(sql)
            names = [d.name for d in cur.description or []]
            rows = cur.fetchall()
        if progress is not None:
            progress(1.0)
        return arrow.finish(arrow.rows_to_table(rows, names, plan, source), plan, source)

    def close(self) -> None:
        self._pg.close()

    # -- helpers ----------------------------------------------------------------------
    def _bind_spine(
        self, cur: psycopg.Cursor, spine: pa.Table, plan: TrainingSetPlan, source: SpineSource
    ) -> None:
        label = plan.label
        columns = [(k, _SPINE_TYPES.get(label.table.kind(k) or "string", "TEXT")) for k in label.keys]
        columns += [("t", "BIGINT"), (SPINE_ROW, "BIGINT")]
        columns += [(n, _REQUEST_TYPES[plan.request[n]]) for n in source.request_columns]
        ddl = ", ".join(f"{name} {kind}" for name, kind in columns)
        cur.execute(f"CREATE TEMP TABLE {SPINE_TABLE} ({ddl}) ON COMMIT DROP")
        names = [name for name, _ in columns]
        with cur.copy(f"COPY {SPINE_TABLE} ({', '.join(names)}) FROM STDIN") as copy:
            for row in zip(*(spine.column(n).to_pylist() for n in names), strict=True):
                copy.write_row(row)

    def _ensure(self, cur: psycopg.Cursor, table: EventTable) -> None:
        if table.name in self._created:
            return
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self._ns}")
        cur.execute(table.ddl("postgres", self.qualified(table)))
        cur.execute(f"CREATE INDEX IF NOT EXISTS {table.name}_ts ON {self.qualified(table)} ({TS_MS})")
        self._created.add(table.name)


def _arrow_of(table: EventTable, column: str) -> pa.DataType:
    return arrow.arrow_type(table.kind(column) or "string")
