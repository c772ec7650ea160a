"""The schema store on PostgreSQL (psycopg 3), in its own PostgreSQL schema.

The connection is opened lazily and reopened after a failure, so a registry started
while PostgreSQL is down answers "store unavailable" quickly (``connect_timeout_s``,
``statement_timeout_s``) and recovers by itself when it comes back.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import errors as pg_errors

from rtml.backends.postgres_support import PgSession
from rtml.backends.schema_store.base import (
    SchemaStoreError,
    StoredSchema,
    SubjectVersion,
    VersionExistsError,
)
from rtml.backends.schema_store.config import PostgresSchemaRegistryConfig

_DDL = """
CREATE SCHEMA IF NOT EXISTS {ns};
CREATE TABLE IF NOT EXISTS {ns}.schemas (
    id INTEGER PRIMARY KEY,
    schema_type TEXT NOT NULL,
    text TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS {ns}.versions (
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES {ns}.schemas(id),
    deleted BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (subject, version)
);
CREATE INDEX IF NOT EXISTS versions_by_schema ON {ns}.versions (schema_id);
CREATE TABLE IF NOT EXISTS {ns}.configs (
    scope TEXT NOT NULL CHECK (scope IN ('global', 'subject')),
    subject TEXT NOT NULL,
    compatibility TEXT NOT NULL,
    PRIMARY KEY (scope, subject)
);
"""
# Serialises DDL and id allocation across processes sharing the database.
_LOCK_KEY = 0x72746D6C  # "rtml"


class PostgresSchemaStore:
    """:class:`~rtml.backends.schema_store.base.SchemaStore` on PostgreSQL."""

    def __init__(self, config: PostgresSchemaRegistryConfig) -> None:
        self._config = config
        self._ns = config.namespace  # checked against an identifier pattern by the config
        self._pg = PgSession(
            config.url,
            connect_timeout_s=config.connect_timeout_s,
            statement_timeout_s=config.statement_timeout_s,
            what="schema store",
            setting="schema_registry.url",
            error=SchemaStoreError,
            passthrough=(pg_errors.UniqueViolation,),
            on_connect=self._create_tables,
        )

    def put_schema(self, schema_type: str, text: str, fingerprint: str) -> int:
        with self._pg.transaction() as cur:
            cur.execute(f"SELECT id FROM {self._ns}.schemas WHERE fingerprint = %s", (fingerprint,))
            row = cur.fetchone()
            if row is None:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                cur.execute(
                    f"INSERT INTO {self._ns}.schemas (id, schema_type, text, fingerprint) "
                    f"SELECT COALESCE(MAX(id), 0) + 1, %s, %s, %s FROM {self._ns}.schemas "
                    "ON CONFLICT (fingerprint) DO NOTHING RETURNING id",
                    (schema_type, text, fingerprint),
                )
                row = cur.fetchone()
                if row is None:  # another process inserted it while we waited for the lock
                    cur.execute(f"SELECT id FROM {self._ns}.schemas WHERE fingerprint = %s", (fingerprint,))
                    row = cur.fetchone()
            if row is None:
                raise SchemaStoreError(f"schema store {self._pg.where}: schema vanished while registering")
            return int(row[0])

    def get_schema(self, schema_id: int) -> StoredSchema | None:
        with self._pg.transaction() as cur:
            cur.execute(
                f"SELECT id, schema_type, text, fingerprint FROM {self._ns}.schemas WHERE id = %s",
                (schema_id,),
            )
            row = cur.fetchone()
        return None if row is None else StoredSchema(int(row[0]), row[1], row[2], row[3])

    def versions(self, *, subject: str | None = None, schema_id: int | None = None) -> list[SubjectVersion]:
        clauses: list[str] = []
        args: list[object] = []
        if subject is not None:
            clauses.append("subject = %s")
            args.append(subject)
        if schema_id is not None:
            clauses.append("schema_id = %s")
            args.append(schema_id)
        where = "WHERE " + " AND ".join(clauses) if clauses else ""
        with self._pg.transaction() as cur:
            cur.execute(
                f"SELECT subject, version, schema_id, deleted FROM {self._ns}.versions {where} "
                "ORDER BY subject, version",
                args,
            )
            rows = cur.fetchall()
        return [SubjectVersion(r[0], int(r[1]), int(r[2]), bool(r[3])) for r in rows]

    def add_version(self, subject: str, version: int, schema_id: int) -> None:
        try:
            with self._pg.transaction() as cur:
                cur.execute(
                    f"INSERT INTO {self._ns}.versions (subject, version, schema_id) VALUES (%s, %s, %s)",
                    (subject, version, schema_id),
                )
        except pg_errors.UniqueViolation:
            raise VersionExistsError(f"subject {subject!r} already has version {version}") from None

    def delete_versions(self, subject: str, versions: Sequence[int], *, permanent: bool) -> None:
        if permanent:
            statement = f"DELETE FROM {self._ns}.versions WHERE subject = %s AND version = ANY(%s)"
        else:
            statement = (
                f"UPDATE {self._ns}.versions SET deleted = true WHERE subject = %s AND version = ANY(%s)"
            )
        with self._pg.transaction() as cur:
            cur.execute(statement, (subject, list(versions)))

    def get_config(self, subject: str | None) -> str | None:
        with self._pg.transaction() as cur:
            cur.execute(
                f"SELECT compatibility FROM {self._ns}.configs WHERE scope = %s AND subject = %s",
                _scope(subject),
            )
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def set_config(self, subject: str | None, level: str | None) -> None:
        with self._pg.transaction() as cur:
            if level is None:
                cur.execute(
                    f"DELETE FROM {self._ns}.configs WHERE scope = %s AND subject = %s", _scope(subject)
                )
            else:
                cur.execute(
                    f"INSERT INTO {self._ns}.configs (scope, subject, compatibility) VALUES (%s, %s, %s) "
                    "ON CONFLICT (scope, subject) DO UPDATE SET compatibility = EXCLUDED.compatibility",
                    (*_scope(subject), level),
                )

    def close(self) -> None:
        self._pg.close()

    def _create_tables(self, conn: psycopg.Connection) -> None:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            cur.execute(_DDL.format(ns=self._ns))  # ns matches an identifier pattern


def _scope(subject: str | None) -> tuple[str, str]:
    return ("global", "") if subject is None else ("subject", subject)
