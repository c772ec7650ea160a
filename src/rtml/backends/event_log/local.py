"""The embedded durable event log: one SQLite file in WAL mode.

Several processes on one machine may produce to and consume from the same file.
Each ``produce`` call is one ``BEGIN IMMEDIATE`` transaction, so offsets are assigned
under SQLite's write lock: per partition they start at 0 and grow by 1 with no gaps.
``synchronous=FULL`` makes a returned ``produce`` or ``commit`` durable against a
process kill and a power loss alike (see docs/event-log.md).

A group may have one open consumer per topic at a time (across processes); it is
enforced with an advisory file lock that the OS drops when its process dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import os
import random
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from rtml.backends.event_log.base import LogConsumer, LogRecord, check_topic, partition_for
from rtml.backends.event_log.config import LocalEventLogConfig
from rtml.backends.sqlite_file import connect_wal, immediate, init_schema, translated_errors
from rtml.errors import RtmlError

T = TypeVar("T")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    partitions INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    topic INTEGER NOT NULL REFERENCES topics (id),
    "partition" INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    headers BLOB,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, "partition", "offset")
);
CREATE TABLE IF NOT EXISTS group_offsets (
    "group" TEXT NOT NULL,
    topic INTEGER NOT NULL REFERENCES topics (id),
    "partition" INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY ("group", topic, "partition")
) WITHOUT ROWID;
"""
_INSERT = (
    'INSERT INTO records (topic, "partition", "offset", key, value, headers, timestamp_ms) '
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_HEAD = 'SELECT MAX("offset") FROM records WHERE topic = ? AND "partition" = ?'
_FETCH = (
    'SELECT "offset", key, value, headers, timestamp_ms FROM records '
    'WHERE topic = ? AND "partition" = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?'
)
_COMMIT = (
    'INSERT INTO group_offsets ("group", topic, "partition", next_offset) VALUES (?, ?, ?, ?) '
    "ON CONFLICT DO UPDATE SET next_offset = excluded.next_offset"
)
_HEADER = struct.Struct(">HI")


class LocalEventLog:
    """The durable embedded log. Thread-safe; each consumer has its own connection."""

    def __init__(self, config: LocalEventLogConfig) -> None:
        self._config = config
        self._path = Path(config.path)
        self._lock = threading.Lock()
        self._topics: dict[str, tuple[int, int]] = {}  # name -> (id, partitions)
        self._round_robin = random.randrange(1 << 16)  # spread short-lived producers
        with _sqlite_errors(self._path):
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = _connect(self._path)
            init_schema(self._conn, _SCHEMA, SCHEMA_VERSION, what=f"the local event log {self._path}")

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        """Create ``name`` (default partition count from the config) if missing."""
        count = self._config.partitions if partitions is None else partitions
        check_topic(name, count)
        with self._write():
            self._topic(name, count)

    def produce(self, topic: str, records: Sequence[LogRecord]) -> None:
        """Append ``records`` in one transaction, durable when this returns."""
        if not records:
            return
        with self._write():
            self._append(topic, records)

    def produce_and_commit(self, outputs: Mapping[str, Sequence[LogRecord]], consumer: LogConsumer) -> None:
        """Append ``outputs`` and commit ``consumer``'s positions in one SQLite transaction."""
        if not isinstance(consumer, LocalLogConsumer) or consumer._path != self._path:
            raise RtmlError(f"produce_and_commit needs a consumer of this same log file {self._path}")
        consumer._check_open()
        with self._write():
            for topic, records in outputs.items():
                self._append(topic, records)
            self._conn.executemany(_COMMIT, consumer._uncommitted())
        consumer._mark_committed()

    def _append(self, topic: str, records: Sequence[LogRecord]) -> None:
        """Insert ``records`` with the next offsets; call inside a write transaction."""
        if not records:
            return
        if topic not in self._topics:
            check_topic(topic)
        now = int(time.time() * 1000)
        topic_id, count = self._topic(topic, self._config.partitions)
        heads: dict[int, int] = {}
        rows = []
        for record in records:
            if record.key is None:
                part = self._round_robin % count
                self._round_robin += 1
            else:
                part = partition_for(record.key, count)
            offset = heads.get(part)
            if offset is None:
                last = self._conn.execute(_HEAD, (topic_id, part)).fetchone()[0]
                offset = 0 if last is None else last + 1
            heads[part] = offset + 1
            rows.append(
                (
                    topic_id,
                    part,
                    offset,
                    record.key,
                    record.value,
                    _encode_headers(record.headers),
                    now if record.timestamp_ms is None else record.timestamp_ms,
                )
            )
        self._conn.executemany(_INSERT, rows)

    def flush(self, timeout: float = 30.0) -> None:
        """Nothing to do: every ``produce`` is durable when it returns."""

    def consumer(self, topics: Sequence[str], group: str) -> LocalLogConsumer:
        """A consumer of ``topics`` (created if missing) in ``group``; it owns every
        partition of them. A second open consumer of the same group and topic, in any
        process, raises :class:`~rtml.errors.RtmlError`."""
        names = list(dict.fromkeys(topics))
        if not names:
            raise RtmlError("a consumer needs at least one topic")
        for name in names:
            check_topic(name)
        with self._write():
            found = {name: self._topic(name, self._config.partitions) for name in names}
        with _sqlite_errors(self._path):  # its OSErrors
            locks = _GroupLocks.acquire(self._path, group, names)
        try:
            with _sqlite_errors(self._path):
                return LocalLogConsumer(self._path, found, group, locks)
        except BaseException:
            locks.release()
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LocalEventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction on the shared connection."""
        with self._lock, _sqlite_errors(self._path):
            try:
                with immediate(self._conn):
                    yield
            except BaseException:
                self._topics.clear()  # a topic created in a rolled-back transaction
                raise

    def _topic(self, name: str, partitions: int) -> tuple[int, int]:
        """(id, partitions) of ``name``, created if missing; call inside a transaction."""
        known = self._topics.get(name)
        if known is not None:
            return known
        self._conn.execute(
            "INSERT INTO topics (name, partitions) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (name, partitions),
        )
        row = self._conn.execute("SELECT id, partitions FROM topics WHERE name = ?", (name,)).fetchone()
        self._topics[name] = (row[0], row[1])
        return self._topics[name]


class LocalLogConsumer:
    """Reads every partition of its topics; use it from one thread at a time."""

    def __init__(
        self,
        path: Path,
        topics: dict[str, tuple[int, int]],
        group: str,
        locks: _GroupLocks,
    ) -> None:
        self._path = path
        self._group = group
        self._locks = locks
        self._conn = _connect(path)
        self._parts = [
            (name, topic_id, part) for name, (topic_id, count) in topics.items() for part in range(count)
        ]
        committed = {
            (row[0], row[1]): row[2]
            for row in self._conn.execute(
                'SELECT topic, "partition", next_offset FROM group_offsets WHERE "group" = ?',
                (group,),
            )
        }
        self._positions = {(t, p): committed.get((t, p), 0) for _, t, p in self._parts}
        self._committed = dict(self._positions)
        self._polls = 0
        self._seen_version: int | None = None  # data_version of the last empty fetch
        self._closed = False

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[LogRecord]:
        """Up to ``max_records`` records, partitions interleaved; [] after ``timeout``."""
        self._check_open()
        if max_records < 1:
            return []
        deadline = time.monotonic() + timeout
        pause = 0.001
        with _sqlite_errors(self._path):
            while True:
                version = self._conn.execute("PRAGMA data_version").fetchone()[0]
                if version != self._seen_version:
                    records = self._fetch(max_records)
                    if records:
                        return records
                    self._seen_version = version
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, 0.05)

    def commit(self) -> None:
        """Store, durably, the position after every record polled so far."""
        self._check_open()
        changed = self._uncommitted()
        if not changed:
            return
        with _sqlite_errors(self._path), immediate(self._conn):
            self._conn.executemany(_COMMIT, changed)
        self._mark_committed()

    def _uncommitted(self) -> list[tuple[str, int, int, int]]:
        """``_COMMIT`` rows for the positions that moved since the last commit."""
        return [
            (self._group, topic_id, part, pos)
            for (topic_id, part), pos in self._positions.items()
            if self._committed.get((topic_id, part)) != pos
        ]

    def _mark_committed(self) -> None:
        self._committed.update(self._positions)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()
            self._locks.release()

    def __enter__(self) -> LocalLogConsumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RtmlError(f"this consumer of group {self._group!r} is closed")

    def _fetch(self, max_records: int) -> list[LogRecord]:
        self._polls += 1
        start = self._polls % len(self._parts)
        order = self._parts[start:] + self._parts[:start]  # rotate who goes first
        share = max(1, -(-max_records // len(order)))
        left = max_records
        batches: list[list[LogRecord]] = []
        for name, topic_id, part in order:
            if left <= 0:
                break
            pos = self._positions[(topic_id, part)]
            rows = self._conn.execute(_FETCH, (topic_id, part, pos, min(share, left))).fetchall()
            if not rows:
                continue
            batches.append(
                [
                    LogRecord(
                        topic=name,
                        partition=part,
                        offset=offset,
                        key=key,
                        value=value,
                        headers=_decode_headers(headers),
                        timestamp_ms=stamp,
                    )
                    for offset, key, value, headers, stamp in rows
                ]
            )
            self._positions[(topic_id, part)] = rows[-1][0] + 1
            left -= len(rows)
        merged = itertools.zip_longest(*batches)
        return [record for row in merged for record in row if record is not None]


class _GroupLocks:
    """Advisory ``flock``s, one per (group, topic), in ``<log file>.locks/``."""

    def __init__(self, fds: list[int]) -> None:
        self._fds = fds

    @classmethod
    def acquire(cls, path: Path, group: str, topics: Sequence[str]) -> _GroupLocks:
        folder = path.parent / f"{path.name}.locks"
        folder.mkdir(exist_ok=True)
        fds: list[int] = []
        try:
            for topic in sorted(topics):
                digest = hashlib.sha256(f"{group}\0{topic}".encode()).hexdigest()[:32]
                fd = os.open(folder / f"{digest}.lock", os.O_RDWR | os.O_CREAT, 0o644)
                fds.append(fd)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                    raise RtmlError(
                        f"consumer group {group!r} already has an open consumer of topic "
                        f"{topic!r} on {path} (process {holder}). The embedded log allows "
                        "one consumer per group and topic: close the other one, or use "
                        "another group (Kafka spreads a group over several consumers)"
                    ) from None
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
        except BaseException:
            cls(fds).release()
            raise
        return cls(fds)

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)  # closing drops the flock
        self._fds = []


def _connect(path: Path) -> sqlite3.Connection:
    return connect_wal(path, what=f"the local event log {path}", setting="event_log.path")


@contextmanager
def _sqlite_errors(path: Path) -> Iterator[None]:
    with translated_errors(
        what=f"the local event log {path}", setting="event_log.path", kind="rtml event log"
    ):
        yield


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> bytes | None:
    if not headers:
        return None
    parts = []
    for name, value in headers:
        raw = name.encode()
        parts.append(_HEADER.pack(len(raw), len(value)) + raw + bytes(value))
    return b"".join(parts)


def _decode_headers(blob: bytes | None) -> tuple[tuple[str, bytes], ...]:
    if not blob:
        return ()
    out = []
    pos = 0
    while pos < len(blob):
        name_len, value_len = _HEADER.unpack_from(blob, pos)
        pos += _HEADER.size
        name = blob[pos : pos + name_len].decode()
        pos += name_len
        out.append((name, blob[pos : pos + value_len]))
        pos += value_len
    return tuple(out)
