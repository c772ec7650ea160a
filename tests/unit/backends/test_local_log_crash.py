"""Durability of the local event log across processes, restarts and ``kill -9``.

Each test runs small Python scripts in subprocesses on one log file, kills some with
SIGKILL mid-stream, and checks what the file holds afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from rtml.backends.event_log.base import LogRecord
from rtml.backends.event_log.config import LocalEventLogConfig
from rtml.backends.event_log.local import LocalEventLog
from rtml.errors import RtmlError

IMPORTS = """
import json, sys, time
from pathlib import Path
from rtml.backends.event_log.base import LogRecord
from rtml.backends.event_log.config import LocalEventLogConfig
from rtml.backends.event_log.local import LocalEventLog
path, topic = Path(sys.argv[1]), sys.argv[2]
"""
PRELUDE = IMPORTS + "log = LocalEventLog(LocalEventLogConfig(path=path, partitions=3))\n"

# argv: path topic start_at; opens (maybe creates) the file at start_at, appends one record
OPENER = """
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))
log = LocalEventLog(LocalEventLogConfig(path=path, partitions=3))
log.produce(topic, [LogRecord(value=b"x")])
"""

# argv: path topic tag batches batch_size start_at; prints "acked N" after each batch
PRODUCER = """
tag, batches, size, start_at = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
time.sleep(max(0.0, start_at - time.time()))
sent = 0
for _ in range(batches):
    log.produce(topic, [
        LogRecord(key=f"{tag}-{(sent + i) % 11}".encode(), value=f"{tag}-{sent + i}".encode())
        for i in range(size)
    ])
    sent += size
    print("acked", sent, flush=True)
log.close()
"""

# argv: path topic group; prints "seen FIRST LAST" and "committed NEXT" per batch
CONSUMER = """
consumer = log.consumer([topic], sys.argv[3])
while True:
    records = consumer.poll(max_records=100, timeout=2.0)
    if not records:
        break
    print("seen", records[0].offset, records[-1].offset, flush=True)
    time.sleep(0.005)
    consumer.commit()
    print("committed", records[-1].offset + 1, flush=True)
consumer.close()
"""

# argv: path topic group; holds a consumer open until killed
HOLDER = """
consumer = log.consumer([topic], sys.argv[3])
print("ready", flush=True)
time.sleep(120)
"""

# argv: path topic group; reads to the end, commits, prints the offsets as JSON
READER = """
consumer = log.consumer([topic], sys.argv[3])
offsets = []
while records := consumer.poll(timeout=0.5):
    offsets += [r.offset for r in records]
consumer.commit()
print(json.dumps(offsets))
"""


def start(script: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + script, *map(str, args)],
        stdout=subprocess.PIPE,
        text=True,
    )


def open_log(path: Path) -> LocalEventLog:
    return LocalEventLog(LocalEventLogConfig(path=path, partitions=3))


def read_everything(path: Path, topic: str, group: str) -> list[LogRecord]:
    with open_log(path) as log, log.consumer([topic], group) as consumer:
        records: list[LogRecord] = []
        while batch := consumer.poll(max_records=1000, timeout=0.3):
            records += batch
        consumer.commit()
        return records


def assert_gap_free(records: list[LogRecord]) -> None:
    by_partition: dict[int, list[int]] = defaultdict(list)
    for record in records:
        by_partition[record.partition].append(record.offset)
    for partition, offsets in by_partition.items():
        assert offsets == list(range(len(offsets))), f"partition {partition} has gaps"


def assert_file_intact(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def kill_when(proc: subprocess.Popen[str], ready: str, at_least: int) -> list[str]:
    """Read ``proc``'s lines until one starting with ``ready`` carries a number >=
    ``at_least``; SIGKILL it; return every line it printed."""
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.strip())
        words = line.split()
        if words and words[0] == ready and int(words[-1]) >= at_least:
            break
    else:
        pytest.fail(f"the process ended before printing {ready} {at_least}: {lines[-3:]}")
    os.kill(proc.pid, signal.SIGKILL)
    lines += [line.strip() for line in proc.stdout]  # printed before the kill landed
    assert proc.wait(timeout=10) == -signal.SIGKILL, "the process ended before the kill"
    return lines


def test_a_new_process_resumes_after_the_committed_position(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with open_log(path) as log:
        log.create_topic("t", 1)
        log.produce("t", [LogRecord(value=str(i).encode()) for i in range(100)])
        with log.consumer(["t"], "g") as consumer:
            assert len(consumer.poll(max_records=40)) == 40
            consumer.commit()

    reader = subprocess.run(
        [sys.executable, "-c", PRELUDE + READER, str(path), "t", "g"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert json.loads(reader.stdout) == list(range(40, 100))
    assert read_everything(path, "t", "g") == []


def test_killed_producer_loses_no_acknowledged_record(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    open_log(path).close()
    producer = start(PRODUCER, path, "t", "p", 2_000, 50, 0)

    lines = kill_when(producer, "acked", 2_000)

    acknowledged = max(int(line.split()[1]) for line in lines)

    assert_file_intact(path)
    records = read_everything(path, "t", "g")
    assert_gap_free(records)
    stored = len(records)
    assert stored >= acknowledged, "an acknowledged record was lost"
    assert stored % 50 == 0, "a batch was stored in part"
    assert sorted(int(r.value.split(b"-")[1]) for r in records) == list(range(stored))


def test_killed_consumer_redelivers_only_uncommitted_records(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    total = 3_000
    with open_log(path) as log:
        log.create_topic("t", 1)
        log.produce("t", [LogRecord(value=str(i).encode()) for i in range(total)])
    consumer = start(CONSUMER, path, "t", "g")

    lines = kill_when(consumer, "committed", 1_000)

    committed = max(int(w.split()[1]) for w in lines if w.startswith("committed"))
    last_seen = max(int(w.split()[2]) for w in lines if w.startswith("seen"))
    rest = read_everything(path, "t", "g")
    resumed_at = rest[0].offset
    assert committed <= resumed_at <= last_seen + 1, "resumed at the wrong position"
    assert [r.offset for r in rest] == list(range(resumed_at, total))
    assert read_everything(path, "t", "g") == []


def test_two_processes_producing_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    open_log(path).close()
    start_at = time.time() + 1.0
    producers = [start(PRODUCER, path, "t", tag, 40, 250, start_at) for tag in ("a", "b")]
    for proc in producers:
        proc.communicate(timeout=120)
        assert proc.returncode == 0

    records = read_everything(path, "t", "g")

    assert len(records) == 20_000
    assert_gap_free(records)
    for tag in (b"a", b"b"):
        numbers = [int(r.value.split(b"-")[1]) for r in records if r.value.startswith(tag)]
        assert sorted(numbers) == list(range(10_000))
    by_key: dict[bytes | None, list[int]] = defaultdict(list)
    for record in records:  # a key's records keep their production order
        by_key[record.key].append(int(record.value.split(b"-")[1]))
    assert all(seq == sorted(seq) for seq in by_key.values())


def test_processes_creating_the_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "new" / "log.db"
    start_at = time.time() + 1.0
    openers = [
        subprocess.Popen([sys.executable, "-c", IMPORTS + OPENER, str(path), "t", str(start_at)])
        for _ in range(4)
    ]
    assert [proc.wait(timeout=60) for proc in openers] == [0, 0, 0, 0]

    records = read_everything(path, "t", "g")
    assert len(records) == 4
    assert_gap_free(records)


def test_group_lock_spans_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    open_log(path).close()
    holder = start(HOLDER, path, "t", "g")
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "ready"

    with open_log(path) as log:
        with pytest.raises(RtmlError, match=f"process {holder.pid}"):
            log.consumer(["t"], "g")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        log.consumer(["t"], "g").close()


def test_a_file_that_is_not_a_log_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    path.write_bytes(b"this is not SQLite" * 100)

    with pytest.raises(RtmlError, match="not a readable rtml event log"):
        open_log(path)


def test_an_unusable_path_is_reported(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()

    with pytest.raises(RtmlError, match=r"dir\.db"):
        open_log(tmp_path / "dir.db")


def test_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "log.db"
    with open_log(path) as log:
        log.produce("t", [LogRecord(value=b"x")])
    assert [r.value for r in read_everything(path, "t", "g")] == [b"x"]
