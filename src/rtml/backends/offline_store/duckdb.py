"""The embedded offline store: one DuckDB file.

DuckDB lets one process open a file for writing, and no other process open it at all
meanwhile. So the store never keeps the file open: each call opens it, does its work and
closes it -- appends read-write, reads and training sets read-only (several builds can
read at once). A call that finds the file held by another process (the engine appending
while ``rtml dataset build`` reads) retries with a growing pause until
``lock_timeout_s``, then raises :class:`~rtml.errors.BackendUnavailableError` saying who
to wait for. Calls of one process are serialized by a per-file lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa

from rtml.backends.offline_store import arrow
from rtml.backends.offline_store.base import OfflineStoreError, Progress, SourceStats, StoredEvent
from rtml.backends.offline_store.config import DUCKDB_FILE, DuckDbOfflineStoreConfig
from rtml.core.pit import SPINE_TABLE, TS_MS, EventTable, SpineSource, TrainingSetPlan, render_training_set
from rtml.errors import BackendUnavailableError
from rtml.timeutil import parse_duration

_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
_POLL_S = 0.2  # how often a build reports progress


def _process_lock(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.Lock())


def _to_arrow(relation: Any) -> pa.Table:
    """DuckDB >= 1.4 calls it to_arrow_table(); older releases arrow()."""
    convert = getattr(relation, "to_arrow_table", None) or relation.arrow
    table: pa.Table = convert()
    return table


class DuckDbOfflineStore:
    """:class:`~rtml.backends.offline_store.base.OfflineStore` on one DuckDB file."""

    dialect: ClassVar[str] = "duckdb"

    def __init__(self, config: DuckDbOfflineStoreConfig) -> None:
        self._config = config
        self.path = (config.path or Path(DUCKDB_FILE)).resolve()
        self._lock = _process_lock(self.path)

    # -- the port ---------------------------------------------------------------------
    def append(self, table: EventTable, events: Sequence[StoredEvent]) -> int:
        """Idempotent by ``event_id`` within ``dedupe_horizon`` of the batch's event times: the
        ids are checked by an anti-join over that time range (zone maps skip the rest of the
        table), which costs the same at 10 M rows as at 10 k; a primary-key index would be
        rewritten whole at every close."""
        if not events:
            return 0
        batch = arrow.events_table(table, events)
        horizon = int(parse_duration(self._config.dedupe_horizon) / timedelta(milliseconds=1))
        low = min(e.ts_ms for e in events) - horizon
        high = max(e.ts_ms for e in events) + horizon
        columns = ", ".join(f'"{c}"' for c in table.column_names)
        with self._connect(read_only=False) as con:
            con.execute(table.ddl("duckdb", primary_key=False))
            con.register("rtml_batch", batch)
            try:
                rows = con.execute(
                    f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM rtml_batch AS b "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {table.name} AS e WHERE e.{TS_MS} BETWEEN ? AND ? "
                    "AND e.event_id = b.event_id)",
                    [low, high],
                ).fetchall()
            finally:
                con.unregister("rtml_batch")
        return int(rows[0][0]) if rows else 0

    def read(self, table: EventTable, *, start_ms: int | None = None, end_ms: int | None = None) -> pa.Table:
        clauses, args = _range(start_ms, end_ms)
        columns = ", ".join(f'"{c}"' for c in table.column_names)
        with self._connect(read_only=True) as con:
            if con is None or not _has_table(con, table.name):
                return arrow.events_table(table, [])
            relation = con.sql(
                f"SELECT {columns} FROM {table.name} {clauses} ORDER BY {TS_MS}, event_id", params=args
            )
            return _to_arrow(relation)

    def stats(self, table: EventTable) -> SourceStats:
        with self._connect(read_only=True) as con:
            if con is None or not _has_table(con, table.name):
                return SourceStats(table.source, 0, None, None)
            row = con.execute(f"SELECT COUNT(*), MIN({TS_MS}), MAX({TS_MS}) FROM {table.name}").fetchall()[0]
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
        source = SpineSource() if spine is None else _spine_source(spine, plan)
        tables = {g.table.source: g.table.name for g in plan.groups}
        tables[plan.label.table.source] = plan.label.table.name
        sql = render_training_set(
            plan, "duckdb", tables=tables, spine=source, include_incomplete=include_incomplete
        )
        with self._connect(read_only=True) as con:
            missing = [] if con is None else [n for n in set(tables.values()) if not _has_table(con, n)]
            if con is None or missing:
                raise OfflineStoreError(
                    f"the offline store {self.path} has no events of source(s) "
                    f"{', '.join(sorted(tables))}. Fix: load events first (rtml dataset load, or run "
                    "the engine)"
                )
            for name, value in (
                ("threads", self._config.threads),
                ("memory_limit", self._config.memory_limit),
            ):
                if value is not None:
                    con.execute(f"SET {name} = '{value}'")
            if spine is not None:
                con.register(SPINE_TABLE, spine)
            result = _run(con, sql, progress)
        return arrow.finish(result, plan, source)

    def close(self) -> None:
        """Nothing stays open between calls."""

    # -- the file ---------------------------------------------------------------------
    @contextmanager
    def _connect(self, *, read_only: bool) -> Iterator[Any]:
        """A connection for one call; None for a reader when the file does not exist yet."""
        with self._lock:
            if read_only and not self.path.exists():
                yield None
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = self._open(read_only)
            try:
                yield con
            except duckdb.Error as exc:
                raise OfflineStoreError(f"the offline store {self.path} failed: {_first_line(exc)}") from exc
            finally:
                con.close()

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self._config.lock_timeout_s
        pause = 0.01
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise BackendUnavailableError(
                        f"the offline store {self.path} cannot be opened ({_first_line(exc)}). "
                        "Fix: check the path and its permissions (offline_store.path)"
                    ) from exc
                if time.monotonic() >= deadline:
                    raise BackendUnavailableError(
                        f"the offline store {self.path} is held by another process "
                        f"({_first_line(exc)}) for more than {self._config.lock_timeout_s:g}s. Fix: wait "
                        "for it (a training-set build or an append), or raise offline_store.lock_timeout_s"
                    ) from exc
                time.sleep(pause)
                pause = min(pause * 2, 0.5)


def _run(con: duckdb.DuckDBPyConnection, sql: str, progress: Progress | None) -> pa.Table:
    """Run ``sql``; while it runs, report DuckDB's own progress estimate."""
    if progress is None:
        return _to_arrow(con.sql(sql))
    con.execute("SET enable_progress_bar = true")
    con.execute("SET enable_progress_bar_print = false")
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["table"] = _to_arrow(con.sql(sql))
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=work, name="rtml-training-set", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(_POLL_S)
        done = con.query_progress()
        if done >= 0:
            progress(min(done / 100.0, 1.0))
    if "error" in box:
        raise box["error"]
    progress(1.0)
    table: pa.Table = box["table"]
    return table


def _spine_source(spine: pa.Table, plan: TrainingSetPlan) -> SpineSource:
    request = tuple(n for n in plan.request if n in spine.column_names and n not in plan.label.keys)
    return SpineSource(kind="table", request_columns=request)


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchall()[0]
    return bool(row and row[0])


def _range(start_ms: int | None, end_ms: int | None) -> tuple[str, list[int]]:
    clauses: list[str] = []
    args: list[int] = []
    if start_ms is not None:
        clauses.append(f"{TS_MS} >= ?")
        args.append(start_ms)
    if end_ms is not None:
        clauses.append(f"{TS_MS} < ?")
        args.append(end_ms)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
