"""What rtml's PostgreSQL backends share (schema store, offline store, prediction log):
one way to connect, and one translation of driver errors at the backend's boundary.

* :func:`connect` -- autocommit connection with statement and lock timeouts and TCP
  keep-alives, so a server that vanishes mid-call is noticed, never waited on forever;
* :func:`translated_errors` -- ``psycopg.OperationalError`` (server down, connection
  lost) becomes :class:`~rtml.errors.BackendUnavailableError` naming the server and the
  setting to fix; any other ``psycopg.Error`` becomes the backend's own error class;
* :func:`redact` -- a URL without its password, for messages; :func:`first_line`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg

from rtml.errors import BackendUnavailableError, RtmlError


def connect(url: str, *, connect_timeout_s: int, statement_timeout_s: float) -> psycopg.Connection:
    timeout_ms = int(statement_timeout_s * 1000)
    return psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=connect_timeout_s,
        options=f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
        keepalives=1,
        keepalives_idle=5,
        keepalives_interval=2,
        keepalives_count=3,
        tcp_user_timeout=timeout_ms + 5000,
    )


def close_quietly(conn: psycopg.Connection | None) -> None:
    if conn is not None:
        try:
            conn.close()
        except psycopg.Error:  # already broken: nothing to close cleanly
            pass


@contextmanager
def translated_errors(
    *,
    what: str,
    where: str,
    setting: str,
    error: type[RtmlError],
    on_failure: Callable[[bool], None],
    passthrough: tuple[type[BaseException], ...] = (),
) -> Iterator[None]:
    """Translate psycopg's errors raised inside the block. ``on_failure(unavailable)`` runs
    first (drop the connection, forget created tables); ``passthrough`` errors (e.g. a
    unique violation the backend handles itself) are re-raised as they are."""
    try:
        yield
    except passthrough:
        raise
    except psycopg.OperationalError as exc:
        on_failure(True)
        raise BackendUnavailableError(
            f"the PostgreSQL {what} at {where} is unavailable ({first_line(exc)}). "
            f"Fix: start PostgreSQL (bash scripts/services.sh start postgres) or correct {setting}"
        ) from exc
    except psycopg.Error as exc:
        on_failure(False)
        raise error(f"the PostgreSQL {what} at {where} failed: {first_line(exc)}") from exc


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class PgSession:
    """A backend's one lazily opened connection, shared by its calls behind a lock: opened
    again when it broke, its errors translated at the boundary (:func:`translated_errors`).

    ``on_connect(conn)`` runs on each new connection (e.g. DDL; the connection is closed if
    it fails); ``on_error()`` runs after a failed statement on a live server (e.g. forget
    which tables were created: a failed DDL transaction created nothing)."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: int,
        statement_timeout_s: float,
        what: str,
        setting: str,
        error: type[RtmlError],
        passthrough: tuple[type[BaseException], ...] = (),
        on_connect: Callable[[psycopg.Connection], None] | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.where = redact(url)
        self._timeouts = (connect_timeout_s, statement_timeout_s)
        self._errors = {"what": what, "setting": setting, "error": error, "passthrough": passthrough}
        self._on_connect = on_connect
        self._on_error = on_error
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor]:
        with self._lock, translated_errors(where=self.where, on_failure=self._failed, **self._errors):  # type: ignore[arg-type]
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                yield cur

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _failed(self, unavailable: bool) -> None:
        if unavailable or (self._conn is not None and self._conn.broken):
            self._drop()
        if not unavailable and self._on_error is not None:
            self._on_error()

    def _connection(self) -> psycopg.Connection:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._drop()
        connect_timeout_s, statement_timeout_s = self._timeouts
        conn = connect(self.url, connect_timeout_s=connect_timeout_s, statement_timeout_s=statement_timeout_s)
        if self._on_connect is not None:
            try:
                self._on_connect(conn)
            except BaseException:
                conn.close()
                raise
        self._conn = conn
        return conn

    def _drop(self) -> None:
        close_quietly(self._conn)
        self._conn = None
