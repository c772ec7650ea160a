"""The embedded schema store: one SQLite file (WAL), shared safely by processes.

Path ``:memory:`` keeps everything in the process (tests). Each call is one
transaction; writes take SQLite's write lock up front (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rtml.backends.schema_store.base import (
    SchemaStoreError,
    StoredSchema,
    SubjectVersion,
    VersionExistsError,
)
from rtml.backends.schema_store.config import EmbeddedSchemaRegistryConfig

_GLOBAL = ""  # the configs row of the global level (scope 'global')
_DDL = """
CREATE TABLE IF NOT EXISTS schemas (
    id INTEGER PRIMARY KEY,
    schema_type TEXT NOT NULL,
    text TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS versions (
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES schemas(id),
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
);
CREATE INDEX IF NOT EXISTS versions_by_schema ON versions (schema_id);
CREATE TABLE IF NOT EXISTS configs (
    scope TEXT NOT NULL CHECK (scope IN ('global', 'subject')),
    subject TEXT NOT NULL,
    compatibility TEXT NOT NULL,
    PRIMARY KEY (scope, subject)
);
"""


class SqliteSchemaStore:
    """:class:`~rtml.backends.schema_store.base.SchemaStore` on SQLite."""

    def __init__(self, config: EmbeddedSchemaRegistryConfig) -> None:
        self._where = str(config.path)
        self._lock = threading.Lock()
        with self._errors():
            if self._where != ":memory:":
                Path(config.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self._where,
                timeout=config.busy_timeout_s,
                isolation_level=None,  # explicit BEGIN/COMMIT below
                check_same_thread=False,  # calls are serialised by self._lock
            )
            if self._where != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_DDL)

    def put_schema(self, schema_type: str, text: str, fingerprint: str) -> int:
        with self._transaction(write=True) as conn:
            row = conn.execute("SELECT id FROM schemas WHERE fingerprint = ?", (fingerprint,)).fetchone()
            if row is None:
                row = conn.execute(
                    "INSERT INTO schemas (id, schema_type, text, fingerprint) "
                    "VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM schemas), ?, ?, ?) RETURNING id",
                    (schema_type, text, fingerprint),
                ).fetchone()
            return int(row[0])

    def get_schema(self, schema_id: int) -> StoredSchema | None:
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT id, schema_type, text, fingerprint FROM schemas WHERE id = ?", (schema_id,)
            ).fetchone()
        return None if row is None else StoredSchema(int(row[0]), row[1], row[2], row[3])

    def versions(self, *, subject: str | None = None, schema_id: int | None = None) -> list[SubjectVersion]:
        where, args = _filters(subject, schema_id)
        with self._transaction() as conn:
            rows = conn.execute(
                f"SELECT subject, version, schema_id, deleted FROM versions {where} "
                "ORDER BY subject, version",
                args,
            ).fetchall()
        return [SubjectVersion(r[0], int(r[1]), int(r[2]), bool(r[3])) for r in rows]

    def add_version(self, subject: str, version: int, schema_id: int) -> None:
        try:
            with self._transaction(write=True) as conn:
                conn.execute(
                    "INSERT INTO versions (subject, version, schema_id) VALUES (?, ?, ?)",
                    (subject, version, schema_id),
                )
        except sqlite3.IntegrityError:
            raise VersionExistsError(f"subject {subject!r} already has version {version}") from None

    def delete_versions(self, subject: str, versions: Sequence[int], *, permanent: bool) -> None:
        rows = [(subject, v) for v in versions]
        with self._transaction(write=True) as conn:
            if permanent:
                conn.executemany("DELETE FROM versions WHERE subject = ? AND version = ?", rows)
            else:
                conn.executemany("UPDATE versions SET deleted = 1 WHERE subject = ? AND version = ?", rows)

    def get_config(self, subject: str | None) -> str | None:
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT compatibility FROM configs WHERE scope = ? AND subject = ?", _scope(subject)
            ).fetchone()
        return None if row is None else str(row[0])

    def set_config(self, subject: str | None, level: str | None) -> None:
        with self._transaction(write=True) as conn:
            if level is None:
                conn.execute("DELETE FROM configs WHERE scope = ? AND subject = ?", _scope(subject))
            else:
                conn.execute(
                    "INSERT INTO configs (scope, subject, compatibility) VALUES (?, ?, ?) "
                    "ON CONFLICT (scope, subject) DO UPDATE SET compatibility = excluded.compatibility",
                    (*_scope(subject), level),
                )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise SchemaStoreError(
                f"the embedded schema store {self._where} failed: {exc}. "
                "Fix: check the file's disk space and permissions, or that no other process holds "
                "a long write lock on it"
            ) from exc


def _scope(subject: str | None) -> tuple[str, str]:
    return ("global", _GLOBAL) if subject is None else ("subject", subject)


def _filters(subject: str | None, schema_id: int | None) -> tuple[str, tuple[object, ...]]:
    clauses: list[str] = []
    args: list[object] = []
    if subject is not None:
        clauses.append("subject = ?")
        args.append(subject)
    if schema_id is not None:
        clauses.append("schema_id = ?")
        args.append(schema_id)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)
