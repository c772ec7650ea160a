"""The embedded dead-letter table: one SQLite file in WAL mode.

DESIGN places the dead-letter table in the offline database. The embedded offline
database is a DuckDB file, which only one process may open for writing, while several
validator processes (and ``rtml status``, the demo) use the dead letters at once. So the
table lives in its own SQLite file, ``<data_dir>/dead_letters.db`` by default: WAL lets
any number of processes read while one writes, and writers wait for each other
(``busy_timeout``). DuckDB can still query it: ``ATTACH '.rtml/dead_letters.db' (TYPE sqlite)``.

The primary key is the source position (topic, partition, offset); a letter written
again is ignored (``ON CONFLICT DO NOTHING``), so the first copy wins. Each ``write`` is
one transaction with ``synchronous=FULL``: durable when it returns.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

from rtml.backends.dead_letter.base import DeadLetter, first_per_position, ranked
from rtml.backends.dead_letter.config import TABLE_FILE, TableDeadLetterConfig
from rtml.backends.sqlite_file import connect_wal, immediate, init_schema, translated_errors

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    topic TEXT NOT NULL,
    "partition" INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    field_path TEXT,
    event_id TEXT,
    received_ms INTEGER NOT NULL,
    key BLOB,
    raw BLOB NOT NULL,
    PRIMARY KEY (topic, "partition", "offset")
);
CREATE INDEX IF NOT EXISTS dead_letters_code ON dead_letters (code);
CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters (received_ms);
"""
_COLUMNS = 'topic, "partition", "offset", code, message, field_path, event_id, received_ms, key, raw'
_INSERT = (
    f"INSERT INTO dead_letters ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_RECENT = (
    f"SELECT {_COLUMNS} FROM dead_letters "
    'ORDER BY received_ms DESC, topic DESC, "partition" DESC, "offset" DESC LIMIT ?'
)


class TableDeadLetterSink:
    """Dead letters in a SQLite table. Thread-safe; open one per process."""

    transactional: ClassVar[bool] = False

    def __init__(self, config: TableDeadLetterConfig | None = None) -> None:
        config = config or TableDeadLetterConfig()
        self._path = Path(config.path) if config.path is not None else Path(".rtml") / TABLE_FILE
        self._lock = threading.Lock()
        with self._errors():
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = _connect(self._path)
            self._init_schema()

    @property
    def path(self) -> Path:
        return self._path

    def write(self, letters: Sequence[DeadLetter]) -> None:
        """Insert ``letters`` in one transaction; positions already stored are skipped."""
        if not letters:
            return
        rows = [
            (
                letter.topic,
                letter.partition,
                letter.offset,
                letter.code,
                letter.message,
                letter.field_path,
                letter.event_id,
                letter.received_ms,
                letter.key,
                letter.raw,
            )
            for letter in first_per_position(letters)
        ]
        with self._lock, self._errors(), immediate(self._conn):
            self._conn.executemany(_INSERT, rows)

    def flush(self) -> None:
        """Nothing to do: every ``write`` is durable when it returns."""

    def count(self) -> int:
        with self._lock, self._errors():
            return int(self._conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

    def counts_by_code(self) -> dict[str, int]:
        with self._lock, self._errors():
            rows = self._conn.execute("SELECT code, COUNT(*) FROM dead_letters GROUP BY code").fetchall()
        return ranked({code: int(n) for code, n in rows})

    def recent(self, limit: int = 20) -> list[DeadLetter]:
        if limit <= 0:
            return []
        with self._lock, self._errors():
            rows = self._conn.execute(_RECENT, (limit,)).fetchall()
        return [_letter(row) for row in reversed(rows)]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> TableDeadLetterSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _init_schema(self) -> None:
        init_schema(self._conn, _SCHEMA, SCHEMA_VERSION, what=f"the dead-letter table {self._path}")

    def _errors(self) -> AbstractContextManager[None]:
        """Translate sqlite3 errors into rtml errors that name the file and the fix."""
        what = f"the dead-letter table {self._path}"
        return translated_errors(what=what, setting="dead_letter.path", kind="SQLite database")


def _letter(row: tuple[Any, ...]) -> DeadLetter:
    topic, partition, offset, code, message, field_path, event_id, received_ms, key, raw = row
    return DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        code=code,
        message=message,
        field_path=field_path,
        event_id=event_id,
        received_ms=received_ms,
        key=key,
        raw=raw,
    )


def _connect(path: Path) -> sqlite3.Connection:
    return connect_wal(path, what=f"the dead-letter table {path}", setting="dead_letter.path")
