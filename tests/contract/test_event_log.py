"""The event log contract, run against every backend (memory, local, Kafka).

Crash and multi-process durability of the local log: tests/unit/backends/test_local_log_crash.py.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

import pytest

from rtml.backends.event_log.base import EventLog, LogConsumer, LogRecord, partition_for
from rtml.backends.event_log.config import KafkaEventLogConfig, MemoryEventLogConfig
from rtml.backends.event_log.memory import MemoryEventLog
from rtml.backends.registry import open_backend
from rtml.errors import BackendUnavailableError, InvalidInputError, RtmlError

if TYPE_CHECKING:
    from conftest import LogHarness

EMBEDDED = ["memory", "local"]  # backends whose behaviour goes beyond Kafka's guarantees


def poll_until(consumer: LogConsumer, count: int, timeout: float = 30.0) -> list[LogRecord]:
    """Poll until ``count`` records arrived (a Kafka consumer first joins its group)."""
    records: list[LogRecord] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        records += consumer.poll(max_records=count - len(records), timeout=0.5)
    return records


def read_all(log: EventLog, topic: str, group: str, count: int) -> list[LogRecord]:
    """Everything a fresh consumer of ``group`` reads (``count`` expected), then commit."""
    with_consumer = log.consumer([topic], group)
    try:
        records = poll_until(with_consumer, count)
        assert len(records) == count, f"expected {count} records, got {len(records)}"
        assert with_consumer.poll(timeout=0.2) == [], "more records than produced"
        with_consumer.commit()
        return records
    finally:
        with_consumer.close()


def values(records: list[LogRecord]) -> list[bytes]:
    return [r.value for r in records]


def test_round_trip_keeps_key_headers_and_timestamp(harness: LogHarness) -> None:
    topic = harness.topic()
    full = LogRecord(
        key=b"user-1",
        value=b'{"event_id": "e1"}',
        headers=(("schema-id", b"7"), ("trace", b"\x00\xff"), ("trace", b"dup")),
        timestamp_ms=1_700_000_000_123,
    )
    bare = LogRecord(value=b"")
    before = int(time.time() * 1000)
    harness.log.produce(topic, [full, bare])
    harness.log.flush()

    got = read_all(harness.log, topic, harness.group(), 2)

    first, second = got
    assert (first.key, first.value, first.headers, first.timestamp_ms) == (
        full.key,
        full.value,
        full.headers,
        full.timestamp_ms,
    )
    assert (first.topic, first.partition, first.offset) == (topic, 0, 0)
    assert (second.key, second.value, second.headers) == (None, b"", ())
    assert second.offset == 1
    assert second.timestamp_ms is not None
    assert before - 60_000 <= second.timestamp_ms <= int(time.time() * 1000) + 60_000


def test_offsets_are_gap_free_and_ordered_per_partition(harness: LogHarness) -> None:
    topic = harness.topic(partitions=3)
    sent = [LogRecord(key=f"k{i % 7}".encode(), value=str(i).encode()) for i in range(300)]
    for start in range(0, 300, 100):  # several produce calls
        harness.log.produce(topic, sent[start : start + 100])
    harness.log.flush()

    got = read_all(harness.log, topic, harness.group(), 300)

    by_partition: dict[int, list[LogRecord]] = defaultdict(list)
    for record in got:
        by_partition[record.partition].append(record)
    for records in by_partition.values():
        assert [r.offset for r in records] == list(range(len(records)))
    by_key: dict[bytes | None, list[int]] = defaultdict(list)
    for record in got:
        by_key[record.key].append(int(record.value))
    for key, seq in by_key.items():
        assert seq == sorted(seq), f"records of key {key!r} out of order"
    assert sorted(int(v) for v in values(got)) == list(range(300))


def test_same_key_goes_to_the_same_partition(harness: LogHarness) -> None:
    topic = harness.topic(partitions=4)
    keys = [f"user-{i}".encode() for i in range(40)]
    harness.log.produce(topic, [LogRecord(key=k, value=b"a") for k in keys])
    harness.log.produce(topic, [LogRecord(key=k, value=b"b") for k in reversed(keys)])
    harness.log.flush()

    got = read_all(harness.log, topic, harness.group(), 80)

    partitions: dict[bytes | None, set[int]] = defaultdict(set)
    for record in got:
        partitions[record.key].add(record.partition)
    for key, parts in partitions.items():
        assert parts == {partition_for(key, 4)}, key
    assert len({p for parts in partitions.values() for p in parts}) > 1


@pytest.mark.parametrize("harness", EMBEDDED, indirect=True)
def test_keyless_records_go_round_robin(harness: LogHarness) -> None:
    topic = harness.topic(partitions=3)
    harness.log.produce(topic, [LogRecord(value=str(i).encode()) for i in range(30)])

    got = read_all(harness.log, topic, harness.group(), 30)

    assert Counter(r.partition for r in got) == {0: 10, 1: 10, 2: 10}


@pytest.mark.parametrize("harness", EMBEDDED, indirect=True)
def test_poll_interleaves_partitions_fairly(harness: LogHarness) -> None:
    topic = harness.topic(partitions=3)
    harness.log.produce(topic, [LogRecord(value=str(i).encode()) for i in range(300)])
    consumer = harness.log.consumer([topic], harness.group())

    batch = consumer.poll(max_records=30, timeout=5)

    assert len(batch) == 30
    assert Counter(r.partition for r in batch) == {0: 10, 1: 10, 2: 10}
    consumer.close()


def test_committed_offsets_survive_reopening(harness: LogHarness) -> None:
    topic = harness.topic()
    group = harness.group()
    harness.log.produce(topic, [LogRecord(value=str(i).encode()) for i in range(10)])
    harness.log.flush()

    consumer = harness.log.consumer([topic], group)
    assert values(poll_until(consumer, 6)) == [str(i).encode() for i in range(6)]
    consumer.commit()
    assert values(poll_until(consumer, 4)) == [str(i).encode() for i in range(6, 10)]
    consumer.close()  # the last 4 were polled but never committed

    log = harness.reopen()
    again = log.consumer([topic], group)
    redelivered = poll_until(again, 4)
    assert [r.offset for r in redelivered] == [6, 7, 8, 9]
    assert again.poll(timeout=0.2) == []
    again.commit()
    again.close()

    log = harness.reopen()
    last = log.consumer([topic], group)
    assert last.poll(timeout=1.0) == []
    log.produce(topic, [LogRecord(value=b"10")])
    log.flush()
    assert values(poll_until(last, 1)) == [b"10"]
    last.close()


def test_groups_are_independent(harness: LogHarness) -> None:
    topic = harness.topic(partitions=2)
    harness.log.produce(topic, [LogRecord(key=str(i).encode(), value=b"x") for i in range(20)])
    harness.log.flush()

    first = read_all(harness.log, topic, harness.group("a"), 20)
    second = read_all(harness.log, topic, harness.group("b"), 20)

    def ids(rs: list[LogRecord]) -> set[tuple[int, int]]:
        return {(r.partition, r.offset) for r in rs}

    assert ids(first) == ids(second)


def test_consumer_of_several_topics_sees_both(harness: LogHarness) -> None:
    one, two = harness.topic(name="one"), harness.topic(name="two")
    harness.log.produce(one, [LogRecord(value=b"1")])
    harness.log.produce(two, [LogRecord(value=b"2")])
    harness.log.flush()
    consumer = harness.log.consumer([one, two], harness.group())

    got = poll_until(consumer, 2)

    assert {(r.topic, r.value) for r in got} == {(one, b"1"), (two, b"2")}
    consumer.close()


def test_consumer_sees_records_produced_after_it_started(harness: LogHarness) -> None:
    topic = harness.topic()
    consumer = harness.log.consumer([topic], harness.group())
    assert consumer.poll(timeout=1.0) == []

    harness.log.produce(topic, [LogRecord(value=b"late")])
    harness.log.flush()

    assert values(poll_until(consumer, 1)) == [b"late"]
    consumer.close()


def test_idle_poll_returns_empty_within_timeout(harness: LogHarness) -> None:
    topic = harness.topic()
    consumer = harness.log.consumer([topic], harness.group())
    consumer.poll(timeout=0.5)  # Kafka: the first poll also joins the group

    started = time.monotonic()
    assert consumer.poll(timeout=0.5) == []
    assert time.monotonic() - started < 3.0
    consumer.close()


def test_create_topic_is_idempotent(harness: LogHarness) -> None:
    topic = harness.topic(partitions=2)
    harness.log.create_topic(topic, 2)
    harness.log.create_topic(topic, 5)  # an existing topic keeps its partitions
    harness.log.produce(topic, [LogRecord(key=str(i).encode(), value=b"x") for i in range(50)])
    harness.log.flush()

    got = read_all(harness.log, topic, harness.group(), 50)

    assert {r.partition for r in got} == {0, 1}


def test_produce_creates_a_missing_topic(harness: LogHarness) -> None:
    topic = f"rtml-test-auto-{harness.group()}"
    harness.topics.append(topic)  # cleaned up afterwards
    harness.log.produce(topic, [LogRecord(value=b"x")])
    harness.log.flush()

    assert values(read_all(harness.log, topic, harness.group(), 1)) == [b"x"]


def test_invalid_topic_name_is_refused(harness: LogHarness) -> None:
    with pytest.raises(InvalidInputError, match="invalid topic name"):
        harness.log.create_topic("no spaces allowed")
    with pytest.raises(InvalidInputError, match="partitions"):
        harness.log.create_topic("fine", 0)


@pytest.mark.parametrize("harness", EMBEDDED, indirect=True)
def test_embedded_log_allows_one_consumer_per_group_and_topic(harness: LogHarness) -> None:
    topic = harness.topic()
    group = harness.group()
    first = harness.log.consumer([topic], group)

    with pytest.raises(RtmlError, match="already has an open consumer"):
        harness.log.consumer([topic], group)
    harness.log.consumer([topic], harness.group("other")).close()  # another group is fine

    first.close()
    harness.log.consumer([topic], group).close()  # free again once closed


# -- Kafka only: failures at the boundary --------------------------------------------


def test_kafka_unreachable_broker_is_reported_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    kafka = pytest.importorskip("rtml.backends.event_log.kafka")
    monkeypatch.setattr(kafka, "CONNECT_TIMEOUT_S", 2.0)
    config = KafkaEventLogConfig(bootstrap_servers="127.0.0.1:1")
    started = time.monotonic()

    with pytest.raises(BackendUnavailableError, match=r"127\.0\.0\.1:1.*make services"):
        kafka.KafkaEventLog(config)
    assert time.monotonic() - started < 30


@pytest.mark.kafka
@pytest.mark.integration
@pytest.mark.parametrize("harness", ["kafka"], indirect=True)
def test_kafka_flush_raises_when_the_broker_refuses_a_record(harness: LogHarness, kafka_servers: str) -> None:
    topic = harness.topic()
    # The client lets 2 MB through; the broker's default limit (1 MB) refuses it.
    config = KafkaEventLogConfig(bootstrap_servers=kafka_servers, client={"message.max.bytes": "3000000"})
    log = open_backend("event_log", config)
    try:
        log.produce(topic, [LogRecord(value=b"x" * 2_000_000)])
        with pytest.raises(RtmlError, match="not delivered"):
            log.flush(timeout=30)
        log.produce(topic, [LogRecord(value=b"small")])  # the log stays usable
        log.flush(timeout=30)
    finally:
        log.close()


def test_produce_and_commit_is_one_step(harness: LogHarness) -> None:
    """Outputs and input offsets commit together: a consume-transform-produce loop that
    stops before the step redoes its inputs with no output left behind; after the step,
    the outputs are there and the inputs are not delivered again."""
    source, sink = harness.topic(partitions=2, name="in"), harness.topic(name="out")
    group = harness.group()
    harness.log.produce(source, [LogRecord(key=str(i).encode(), value=str(i).encode()) for i in range(10)])
    harness.log.flush()

    crashed = harness.log.consumer([source], group)
    assert len(poll_until(crashed, 10)) == 10
    crashed.close()  # stopped before produce_and_commit: nothing was handed over

    log = harness.reopen()
    consumer = log.consumer([source], group)
    inputs = poll_until(consumer, 10)
    assert sorted(values(inputs)) == sorted(str(i).encode() for i in range(10))
    log.produce_and_commit({sink: [LogRecord(value=r.value + b"!") for r in inputs]}, consumer)
    assert consumer.poll(timeout=0.3) == []
    consumer.close()

    log = harness.reopen()
    again = log.consumer([source], group)
    assert again.poll(timeout=0.5) == []
    again.close()
    outputs = read_all(log, sink, harness.group("reader"), 10)
    assert sorted(values(outputs)) == sorted(str(i).encode() + b"!" for i in range(10))


def test_produce_and_commit_refuses_a_foreign_consumer(harness: LogHarness) -> None:
    other = MemoryEventLog(MemoryEventLogConfig())
    foreign = other.consumer(["x"], "g")
    with pytest.raises(RtmlError, match="produce_and_commit needs a consumer"):
        harness.log.produce_and_commit({}, foreign)
    foreign.close()
