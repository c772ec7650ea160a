"""The embedded online store: one SQLite file in WAL mode (``<data_dir>/online.db``).

The engine writes while the server and the CLI read, each process with its own
connection: WAL lets readers go on during a write and see whole writes only. Tables:

* ``states (view, key, blob, expires_ms)``: one row per (view, key); ``key`` is the
  canonical JSON of the key's values (:mod:`.keys`), ``expires_ms`` the wall-clock time
  (ms) after which the row reads as absent (``NULL``: never). Expired rows are deleted
  by later writes, at most once a minute;
* ``state_deltas (view, key, frame)``: what was appended to a live state (``Append``), in
  rowid order; a read returns the state's blob followed by its frames, a replacing write
  (or the purge of an expired state) deletes them. Appending in place (``blob || ?``)
  would rewrite the whole blob on every append;
* ``checkpoints (name, blob)`` and ``fingerprints (view, fingerprint)``.

A ``write`` (or ``write_many``: several views) is one ``BEGIN IMMEDIATE`` transaction
(states replaced, frames added and their states' expiry renewed, then the checkpoint); a
``read`` is one read transaction: ``SELECT ... FROM states WHERE view = ? AND key IN (...)``,
then the frames of the keys found.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rtml.backends.online_store.base import Append, Key
from rtml.backends.online_store.config import SqliteOnlineStoreConfig
from rtml.backends.online_store.keys import as_blob, encode_key
from rtml.backends.sqlite_file import immediate, init_schema
from rtml.errors import BackendUnavailableError, ConfigError, RtmlError

SCHEMA_VERSION = 2  # 2: state_deltas
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
CREATE TABLE IF NOT EXISTS state_deltas (view TEXT NOT NULL, key BLOB NOT NULL, frame BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS state_deltas_key ON state_deltas (view, key);
CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, blob BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fingerprints (view TEXT PRIMARY KEY, fingerprint TEXT NOT NULL) WITHOUT ROWID;
"""
_UPSERT = "INSERT OR REPLACE INTO states (view, key, blob, expires_ms) VALUES (?, ?, ?, ?)"
_ADD_DELTA = "INSERT INTO state_deltas (view, key, frame) VALUES (?, ?, ?)"
_RENEW = "UPDATE states SET expires_ms = ? WHERE view = ? AND key = ?"
_EXPIRED = f"SELECT view, key FROM states WHERE expires_ms <= ? LIMIT {PURGE_ROWS}"
_LIVE = "(expires_ms IS NULL OR expires_ms > ?)"


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
        self.write_many({view: (states, ttl_ms)}, checkpoint=checkpoint)

    def write_many(
        self,
        writes: Mapping[str, tuple[Mapping[Key, bytes], int | None]],
        *,
        checkpoint: tuple[str, bytes] | None = None,
    ) -> None:
        """``write`` of several views (states, ttl) and the checkpoint in one transaction."""
        now = _now_ms()
        rows: list[tuple[str, bytes, bytes, int | None]] = []
        appends: list[tuple[str, bytes, bytes, int | None]] = []
        for view, (states, ttl_ms) in writes.items():
            expires = None if ttl_ms is None else now + ttl_ms
            for k, blob in states.items():
                row = (view, encode_key(k), as_blob(blob, k), expires)
                (appends if isinstance(blob, Append) else rows).append(row)
        if checkpoint is not None:
            as_blob(checkpoint[1], f"checkpoint {checkpoint[0]!r}")
        with self._lock, self._errors(), self._transaction():
            live = self._live_keys(appends, now)
            replaced = rows + [row for row in appends if (row[0], row[1]) not in live]
            replaced.sort()  # in primary-key order: fewer B-tree pages touched
            if replaced:
                self._conn.executemany(_UPSERT, replaced)
                self._clear_deltas([(v, k) for v, k, _, _ in replaced])
            added = sorted(row for row in appends if (row[0], row[1]) in live)
            if added:
                self._conn.executemany(_ADD_DELTA, [(v, k, frame) for v, k, frame, _ in added])
                self._conn.executemany(_RENEW, [(expires, v, k) for v, k, _, expires in added])
            if checkpoint is not None:
                self._conn.execute(
                    "INSERT OR REPLACE INTO checkpoints (name, blob) VALUES (?, ?)",
                    (checkpoint[0], bytes(checkpoint[1])),
                )
            if now - self._last_purge >= PURGE_EVERY_MS:
                expired = self._conn.execute(_EXPIRED, (now,)).fetchall()
                self._conn.executemany("DELETE FROM states WHERE view = ? AND key = ?", expired)
                self._clear_deltas(expired)
                self._last_purge = now

    def _clear_deltas(self, keys: list[tuple[str, bytes]]) -> None:
        """Delete the frames of these (view, key): one statement per view and 900 keys."""
        by_view: dict[str, list[bytes]] = {}
        for view, key in keys:
            by_view.setdefault(view, []).append(key)
        for view, names in by_view.items():
            for i in range(0, len(names), _CHUNK):
                chunk = names[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                self._conn.execute(
                    f"DELETE FROM state_deltas WHERE view = ? AND key IN ({marks})", (view, *chunk)
                )

    def _live_keys(
        self, rows: list[tuple[str, bytes, bytes, int | None]], now: int
    ) -> set[tuple[str, bytes]]:
        """The (view, key) of ``rows`` whose state is stored and not expired."""
        live: set[tuple[str, bytes]] = set()
        by_view: dict[str, list[bytes]] = {}
        for view, key, _, _ in rows:
            by_view.setdefault(view, []).append(key)
        for view, keys in by_view.items():
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT key FROM states WHERE view = ? AND key IN ({marks}) AND {_LIVE}"
                live.update((view, k) for (k,) in self._conn.execute(sql, (view, *chunk, now)))
        return live

    def read(self, view: str, keys: Sequence[Key]) -> list[bytes | None]:
        if not keys:
            return []
        encoded = [encode_key(k) for k in keys]
        unique = list(dict.fromkeys(encoded))
        now = _now_ms()
        found: dict[bytes, bytes] = {}
        with self._lock, self._errors():
            self._check_open()
            self._conn.execute("BEGIN")  # one snapshot for the states and their deltas
            try:
                for i in range(0, len(unique), _CHUNK):
                    chunk = unique[i : i + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    sql = f"SELECT key, blob FROM states WHERE view = ? AND key IN ({marks}) AND {_LIVE}"
                    found.update(self._conn.execute(sql, (view, *chunk, now)).fetchall())
                present = [k for k in unique if k in found]
                frames: dict[bytes, list[bytes]] = {}
                for i in range(0, len(present), _CHUNK):
                    chunk = present[i : i + _CHUNK]
                    sql = (
                        "SELECT key, frame FROM state_deltas WHERE view = ? AND key IN "
                        f"({','.join('?' * len(chunk))}) ORDER BY key, rowid"
                    )
                    for key, frame in self._conn.execute(sql, (view, *chunk)):
                        frames.setdefault(key, []).append(frame)
            finally:
                self._conn.execute("COMMIT")
        for key, parts in frames.items():
            found[key] = found[key] + b"".join(parts)
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
