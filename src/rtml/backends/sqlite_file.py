"""What every SQLite-file backend shares: WAL connections, schema versions, write
transactions and the translation of sqlite3 errors into rtml errors.

Used by the embedded event log, the dead-letter table and the embedded online store:
several processes on one machine share each file (one writer at a time, readers alongside).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from rtml.errors import BackendUnavailableError, RtmlError

T = TypeVar("T")

BUSY_TIMEOUT_S = 30.0


def connect_wal(path: Path, *, what: str, setting: str, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode (autocommit; transactions are explicit).

    ``what`` names the file in messages ("the local event log /x/log.db"), ``setting`` the
    rtml.yaml key that points at it ("event_log.path").
    """
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    mode = retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
    if str(mode).lower() != "wal":
        conn.close()
        raise RtmlError(
            f"{what} cannot use SQLite's WAL mode (got {mode!r}); it needs a local file system. "
            f"Fix: point {setting} at a local disk"
        )
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


def init_schema(conn: sqlite3.Connection, schema: str, version: int, *, what: str) -> None:
    """Create the tables of ``schema`` (statements separated by ';') once per file version."""
    with immediate(conn):
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found > version:
            raise RtmlError(
                f"{what} was written by a newer rtml (schema {found} > {version}). Fix: upgrade rtml"
            )
        if found < version:
            for statement in schema.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes SQLite's write lock up front; rolled back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def translated_errors(*, what: str, setting: str, kind: str) -> Iterator[None]:
    """Turn sqlite3 errors into rtml errors naming the file and the fix. ``kind`` says what
    the file should be ("rtml event log")."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise BackendUnavailableError(
                f"{what} stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s ({text}). "
                "Fix: check for a stuck rtml process"
            ) from exc
        raise RtmlError(
            f"{what} failed: {text}. Fix: check that {setting} is a writable file on a local disk"
        ) from exc
    except sqlite3.DatabaseError as exc:
        raise RtmlError(
            f"{what} is not a readable {kind} ({exc}). Fix: point {setting} at another file, "
            "or move this one away"
        ) from exc
    except OSError as exc:
        raise RtmlError(f"{what} failed: {exc}") from exc


def retry_locked(action: Callable[[], T]) -> T:
    """Retry ``action`` while SQLite reports a lock: switching to WAL does not wait on
    ``busy_timeout`` when two processes create the file at once."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
