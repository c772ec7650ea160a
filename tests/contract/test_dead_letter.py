"""The dead-letter sink contract, run against every backend (memory, table, Kafka, search).

Kafka runs on the broker of ``scripts/services.sh`` (or ``RTML_TEST_KAFKA``) with a unique
topic per test; the search backend on its osmem-server (or ``RTML_TEST_SEARCH``, any
OpenSearch/Elasticsearch URL) with a unique index prefix per test. A server that cannot
be reached FAILS these tests with a message saying how to start it; they never skip.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from rtml.backends.dead_letter import DeadLetter, DeadLetterSink, TransactionalDeadLetterSink
from rtml.backends.dead_letter.config import (
    KafkaDeadLetterConfig,
    MemoryDeadLetterConfig,
    OpenSearchDeadLetterConfig,
    TableDeadLetterConfig,
)
from rtml.backends.registry import open_backend
from rtml.errors import BackendUnavailableError, RtmlError

KAFKA = os.environ.get("RTML_TEST_KAFKA", "127.0.0.1:9092")
SEARCH = os.environ.get("RTML_TEST_SEARCH", "http://127.0.0.1:9200")
KAFKA_PARAM = pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.integration])
SEARCH_PARAM = pytest.param("opensearch", marks=[pytest.mark.search, pytest.mark.integration])
ALL_BACKENDS = ["memory", "table", KAFKA_PARAM, SEARCH_PARAM]
DURABLE = ["table", KAFKA_PARAM, SEARCH_PARAM]

DAY = 86_400_000
T0 = int(datetime(2024, 3, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
# Bytes a producer may send that are not text: invalid UTF-8, NUL, every byte value.
JUNK = [
    b"\xff\xfe\xfd",
    b'{"price": 1\x00}',
    b"\xc3\x28 truncated \xe2\x82",
    bytes(range(256)),
    b"",
    b'{"a": "\xed\xa0\x80"}',  # an encoded lone surrogate
]


def letter(offset: int, *, code: str = "not_json", received_ms: int = T0, **fields: object) -> DeadLetter:
    values: dict[str, object] = {
        "raw": f'{{"n": {offset}'.encode(),
        "code": code,
        "message": f"event {offset} is cut short",
        "field_path": None,
        "topic": "shop.events.raw",
        "partition": offset % 2,
        "offset": offset,
        "received_ms": received_ms + offset,
    }
    values.update(fields)
    return DeadLetter(**values)  # type: ignore[arg-type]  # test helper: fields by name


class SinkHarness:
    """A sink under test, with a way to open a second one on the same storage."""

    def __init__(self, backend: str, opener: Callable[[], DeadLetterSink]) -> None:
        self.backend = backend
        self._opener = opener
        self.sink = opener()
        self._others: list[DeadLetterSink] = []

    def another(self) -> DeadLetterSink:
        """A second sink on the same storage (a restarted or parallel validator)."""
        if self.backend == "memory":
            return self.sink
        other = self._opener()
        self._others.append(other)
        return other

    def close(self) -> None:
        for sink in [self.sink, *self._others]:
            sink.close()


@pytest.fixture(scope="session")
def down() -> dict[str, str]:
    """backend -> why its server cannot be used (filled once per session)."""
    return {}


@pytest.fixture(params=ALL_BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path, down: dict[str, str]) -> Iterator[SinkHarness]:
    backend: str = request.param
    suffix = uuid.uuid4().hex[:10]
    opener: Callable[[], DeadLetterSink]
    if backend == "memory":
        memory = open_backend("dead_letter", MemoryDeadLetterConfig())
        opener = lambda: memory  # noqa: E731
    elif backend == "table":
        table = TableDeadLetterConfig(path=tmp_path / "data" / "dead_letters.db")
        opener = lambda: open_backend("dead_letter", table)  # noqa: E731
    elif backend == "kafka":
        kafka = KafkaDeadLetterConfig(bootstrap_servers=KAFKA, topic=f"rtml-test-dl-{suffix}", partitions=2)
        opener = lambda: open_backend("dead_letter", kafka)  # noqa: E731
    else:
        search = OpenSearchDeadLetterConfig(url=SEARCH, index_prefix=f"rtml-test-dl-{suffix}")
        opener = lambda: open_backend("dead_letter", search)  # noqa: E731
    if backend in down:
        pytest.fail(down[backend], pytrace=False)
    try:
        harness = SinkHarness(backend, opener)
    except BackendUnavailableError as exc:
        where = "RTML_TEST_KAFKA" if backend == "kafka" else "RTML_TEST_SEARCH"
        down[backend] = f"{exc} (tests: or set {where})"
        pytest.fail(down[backend], pytrace=False)
    yield harness
    harness.close()
    if backend == "kafka":
        _delete_topic(f"rtml-test-dl-{suffix}")
    elif backend == "opensearch":
        _delete_indices(f"rtml-test-dl-{suffix}")


def _delete_topic(topic: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": KAFKA, "logger": logging.getLogger(__name__)})
    for future in admin.delete_topics([topic], request_timeout=10).values():
        try:
            future.result(timeout=15)
        except Exception:  # noqa: S110 - best-effort cleanup
            pass


def _delete_indices(prefix: str) -> None:
    try:
        with httpx.Client(base_url=SEARCH, timeout=10) as http:
            http.delete(f"/{prefix}-*")
            http.delete(f"/_index_template/{prefix}")
    except httpx.HTTPError:
        pass


def write_all(sink: DeadLetterSink, letters: list[DeadLetter]) -> None:
    sink.write(letters)
    sink.flush()


# -- the contract ----------------------------------------------------------------------


def test_a_new_sink_is_empty(harness: SinkHarness) -> None:
    assert harness.sink.count() == 0
    assert harness.sink.counts_by_code() == {}
    assert harness.sink.recent() == []


def test_write_flush_count_and_read_back(harness: SinkHarness) -> None:
    letters = [
        letter(0, code="not_json"),
        letter(1, code="wrong_type", field_path="$.price", event_id="e-1", key=b"user-7"),
        letter(2, code="missing_field", field_path="$.user_id"),
    ]
    write_all(harness.sink, letters)

    assert harness.sink.count() == 3
    assert harness.sink.recent(10) == letters  # every field, oldest first


def test_writing_the_same_letters_again_leaves_one_copy(harness: SinkHarness) -> None:
    letters = [letter(i) for i in range(20)]
    write_all(harness.sink, letters)
    write_all(harness.sink, letters[5:15])  # the same sink again
    write_all(harness.sink, [letters[3], letters[3]])  # twice in one batch
    restarted = harness.another()  # a validator that crashed before committing
    write_all(restarted, letters[10:])

    for sink in (harness.sink, restarted):
        assert sink.count() == 20
        assert sink.counts_by_code() == {"not_json": 20}
        assert sink.recent(100) == letters


def test_the_first_copy_of_a_position_wins(harness: SinkHarness) -> None:
    first = letter(7, code="not_json", message="first")
    again = letter(7, code="wrong_type", message="second", received_ms=T0 + 5)  # same day
    write_all(harness.sink, [first])
    write_all(harness.another(), [again])

    assert harness.sink.recent() == [first]
    assert harness.sink.counts_by_code() == {"not_json": 1}


def test_original_bytes_are_kept_exactly(harness: SinkHarness) -> None:
    big = os.urandom(200_000)
    letters = [letter(i, raw=raw, key=raw[:16] or None) for i, raw in enumerate([*JUNK, big])]
    write_all(harness.sink, letters)

    got = {(g.topic, g.partition, g.offset): g for g in harness.another().recent(100)}

    for sent in letters:
        back = got[sent.position]
        assert back.raw == sent.raw, f"raw bytes of offset {sent.offset} changed"
        assert back.key == sent.key


def test_text_with_any_characters_round_trips(harness: SinkHarness) -> None:
    sent = letter(
        0,
        message='$.brand: expected string, got "\u00e9\u4e2d\U0001f600" \\ "quoted"\n\ttab',
        field_path="$.items[0].name",
        event_id="ev\u00e9nement-1",
    )
    write_all(harness.sink, [sent])

    assert harness.sink.recent() == [sent]


def test_counts_by_code_most_frequent_first(harness: SinkHarness) -> None:
    codes = ["not_json"] * 5 + ["wrong_type"] * 3 + ["missing_field"] * 3 + ["rule_failed"]
    write_all(harness.sink, [letter(i, code=code) for i, code in enumerate(codes)])

    counts = harness.sink.counts_by_code()

    assert counts == {"not_json": 5, "missing_field": 3, "wrong_type": 3, "rule_failed": 1}
    assert list(counts) == ["not_json", "missing_field", "wrong_type", "rule_failed"]
    assert harness.sink.count() == 12


def test_recent_returns_the_latest_received_oldest_first(harness: SinkHarness) -> None:
    letters = [letter(i, received_ms=T0 + 1000 * i) for i in range(8)]
    write_all(harness.sink, list(reversed(letters)))

    assert harness.sink.recent(3) == letters[-3:]
    assert harness.sink.recent(0) == []


def test_letters_of_several_days_and_sources(harness: SinkHarness) -> None:
    letters = [letter(i, received_ms=T0 + (i % 3) * DAY, topic=f"shop.events.raw{i % 2}") for i in range(12)]
    write_all(harness.sink, letters)

    assert harness.sink.count() == 12
    assert sorted(harness.sink.recent(100), key=lambda d: d.position) == sorted(
        letters, key=lambda d: d.position
    )


@pytest.mark.parametrize("harness", DURABLE, indirect=True)
def test_letters_outlive_the_sink(harness: SinkHarness) -> None:
    letters = [letter(i) for i in range(5)]
    write_all(harness.sink, letters)
    harness.sink.close()

    harness.sink = harness.another()

    assert harness.sink.count() == 5
    assert harness.sink.recent() == letters


def test_the_port_is_what_the_backend_implements(harness: SinkHarness) -> None:
    assert isinstance(harness.sink, DeadLetterSink)
    assert harness.sink.transactional == (harness.backend == "kafka")
    assert isinstance(harness.sink, TransactionalDeadLetterSink) == (harness.backend == "kafka")


# -- several processes on the embedded table -------------------------------------------


def _write_range(path: str, start: int, stop: int) -> None:
    sink = open_backend("dead_letter", TableDeadLetterConfig(path=Path(path)))
    for i in range(start, stop, 10):
        sink.write([letter(j) for j in range(i, min(i + 10, stop))])
    sink.flush()
    sink.close()


@pytest.mark.parametrize("harness", ["table"], indirect=True)
def test_table_shared_by_processes_writing_overlapping_letters(harness: SinkHarness, tmp_path: Path) -> None:
    path = str(tmp_path / "data" / "dead_letters.db")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_range, args=(path, start, start + 300)) for start in (0, 100, 200)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0

    assert harness.sink.count() == 500


# -- failures ---------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_table_in_an_unusable_place_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(RtmlError, match="dead-letter table"):
        open_backend("dead_letter", TableDeadLetterConfig(path=blocker / "dead_letters.db"))


@pytest.mark.search
def test_search_server_down_is_backend_unavailable_quickly() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="services.sh start search"):
        open_backend("dead_letter", OpenSearchDeadLetterConfig(url=url, index_prefix="x"))
    assert time.monotonic() - start < 10


@pytest.mark.search
def test_search_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (backlog), never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="timed out"):
            open_backend("dead_letter", OpenSearchDeadLetterConfig(url=url, timeout_s=1.0))
        assert time.monotonic() - start < 10


@pytest.mark.kafka
@pytest.mark.integration
def test_kafka_down_is_backend_unavailable() -> None:
    config = KafkaDeadLetterConfig(bootstrap_servers=f"127.0.0.1:{_closed_port()}", topic="t")
    start = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="dead_letter.bootstrap_servers"):
        open_backend("dead_letter", config)
    assert time.monotonic() - start < 30
