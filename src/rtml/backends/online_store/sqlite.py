"""The embedded online store: one SQLite file in WAL mode (``<data_dir>/online.db``).

The engine writes while the server and the CLI read, each process with its own
connection: WAL lets readers go on during a write and see whole writes only. Tables:

* ``states (view, key, blob, expires_ms)``: one row per (view, key); ``key`` is the
  canonical JSON of the key's values (:mod:`.keys`), ``expires_ms`` the wall-clock time
  (ms) after which the row reads as absent (``NULL``: never). Expired rows are deleted
  by later writes, at most once a minute;
* ``checkpoints (name, blob)`` and ``fingerprints (view, fingerprint)``.

A ``write`` is one ``BEGIN IMMEDIATE`` transaction (states, then the checkpoint); a
``read`` is one ``SELECT ... WHERE view = ? AND key IN (...)``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rtml.backends.online_store.base import Key
from rtml.backends.online_store.config import SqliteOnlineStoreConfig
from rtml.backends.online_store.keys import as_blob, encode_key
from rtml.backends.sqlite_file import immediate, init_schema
from rtml.errors import BackendUnavailableError, ConfigError, RtmlError

SCHEMA_VERSION = 1
PURGE_EVERY_MS = 60_000
PURGE_ROWS = 10_000
_CHUNK = 900  # keys per SELECT (well under SQLite's variable limit)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS states (
    view TEXT NOT NULL,
    key BLOB NOT NULL,
    blob BLOB NOT NULL,
    expires_ms INTEGER,
    PRIMARY KEY (view, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS states_expiry ON states (expires_ms) WHERE expires_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, blob BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fingerprints (view TEXT PRIMARY KEY, fingerprint TEXT NOT NULL) WITHOUT ROWID;
"""
_UPSERT = "INSERT OR REPLACE INTO states (view, key, blob, expires_ms) VALUES (?, ?, ?, ?)"
_PURGE = (
    "DELETE FROM states WHERE (view, key) IN "
    f"(SELECT view, key FROM states WHERE expires_ms <= ? LIMIT {PURGE_ROWS})"
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqliteOnlineStore:
    """The embedded online store. Thread-safe (one connection behind a lock)."""

    def __init__(self, config: SqliteOnlineStoreConfig) -> None:
        if config.path is None:
            raise ConfigError("online_store.path is not set. Fix: open the store with the project's data_dir")
        self._path = Path(config.path)
        self._config = config
        self._lock = threading.Lock()
        self._last_purge = 0
        self._closed = False
        with self._errors():
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self._path, timeout=config.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                self._conn.close()
                raise RtmlError(
                    f"the online store {self._path} cannot use SQLite's WAL mode (got {mode!r}). "
                    "Fix: point online_store.path at a file on a local disk"
                )
            self._conn.execute(f"PRAGMA synchronous={config.synchronous.upper()}")
            self._init_schema()

    # -- OnlineStore --------------------------------------------------------------------

    def write(
        self,
        view: str,
        states: Mapping[Key, bytes],
        *,
        checkpoint: tuple[str, bytes] | None = None,
        ttl_ms: int | None = None,
    ) -> None:
        now = _now_ms()
        expires = None if ttl_ms is None else now + ttl_ms
        rows = [(view, encode_key(k), as_blob(blob, k), expires) for k, blob in states.items()]
        if checkpoint is not None:
            as_blob(checkpoint[1], f"checkpoint {checkpoint[0]!r}")
        with self._lock, self._errors(), self._transaction():
            self._conn.executemany(_UPSERT, rows)
            if checkpoint is not None:
                self._conn.execute(
                    "INSERT OR REPLACE INTO checkpoints (name, blob) VALUES (?, ?)",
                    (checkpoint[0], bytes(checkpoint[1])),
                )
            if now - self._last_purge >= PURGE_EVERY_MS:
                self._conn.execute(_PURGE, (now,))
                self._last_purge = now

    def read(self, view: str, keys: Sequence[Key]) -> list[bytes | None]:
        if not keys:
            return []
        encoded = [encode_key(k) for k in keys]
        unique = list(dict.fromkeys(encoded))
        now = _now_ms()
        found: dict[bytes, bytes] = {}
        with self._lock, self._errors():
            self._check_open()
            many = len(unique) > _CHUNK
            if many:  # one snapshot for all chunks
                self._conn.execute("BEGIN")
            try:
                for i in range(0, len(unique), _CHUNK):
                    chunk = unique[i : i + _CHUNK]
                    sql = (
                        "SELECT key, blob FROM states WHERE view = ? AND key IN "
                        f"({','.join('?' * len(chunk))}) AND (expires_ms IS NULL OR expires_ms > ?)"
                    )
                    found.update(self._conn.execute(sql, (view, *chunk, now)).fetchall())
            finally:
                if many:
                    self._conn.execute("COMMIT")
        return [found.get(k) for k in encoded]

    def checkpoint(self, name: str) -> bytes | None:
        row = self._fetch_one("SELECT blob FROM checkpoints WHERE name = ?", name)
        return None if row is None else bytes(row)

    def set_fingerprint(self, view: str, fingerprint: str) -> None:
        with self._lock, self._errors(), self._transaction():
            self._conn.execute(
                "INSERT OR REPLACE INTO fingerprints (view, fingerprint) VALUES (?, ?)", (view, fingerprint)
            )

    def fingerprint(self, view: str) -> str | None:
        row = self._fetch_one("SELECT fingerprint FROM fingerprints WHERE view = ?", view)
        return None if row is None else str(row)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    # -- helpers ------------------------------------------------------------------------

    def _fetch_one(self, sql: str, arg: str) -> Any:
        with self._lock, self._errors():
            self._check_open()
            row = self._conn.execute(sql, (arg,)).fetchone()
        return None if row is None else row[0]

    def _init_schema(self) -> None:
        self._check_open()
        init_schema(self._conn, _SCHEMA, SCHEMA_VERSION, what=f"the online store {self._path}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """A write transaction: all of it is stored, or (on any error) none of it."""
        self._check_open()
        with immediate(self._conn):
            yield

    def _check_open(self) -> None:
        if self._closed:
            raise RtmlError(f"the online store {self._path} is closed")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate sqlite3 errors into rtml errors that name the file and the fix."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise BackendUnavailableError(
                    f"the online store {self._path} stayed locked by another process for "
                    f"{self._config.busy_timeout_s:g} s ({text}). Fix: check for a stuck rtml process, "
                    "or raise online_store.busy_timeout_s"
                ) from exc
            raise RtmlError(
                f"the online store {self._path} failed: {text}. Fix: check that the path is a "
                "writable file on a local disk"
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise RtmlError(
                f"{self._path} is not a readable rtml online store ({exc}). Fix: point "
                "online_store.path at another file, or move this one away and run `rtml materialize`"
            ) from exc
        except OSError as exc:
            raise RtmlError(f"the online store {self._path} failed: {exc}") from exc
