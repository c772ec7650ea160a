"""What the Kafka and search dead-letter sinks put on their servers (beyond the port's
contract in tests/contract/test_dead_letter.py): the record and header layout, the Kafka
transaction path, daily indices, the index template and per-item bulk errors.

A server that is down FAILS these tests (never skips): start them with
`bash scripts/services.sh start kafka search`.
"""

from __future__ import annotations

import base64
import logging
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from rtml.backends.dead_letter import DeadLetter
from rtml.backends.dead_letter.config import KafkaDeadLetterConfig, OpenSearchDeadLetterConfig
from rtml.backends.dead_letter.kafka import KafkaDeadLetterSink
from rtml.backends.dead_letter.opensearch import OpenSearchDeadLetterSink
from rtml.errors import BackendUnavailableError, RtmlError

KAFKA = os.environ.get("RTML_TEST_KAFKA", "127.0.0.1:9092")
SEARCH = os.environ.get("RTML_TEST_SEARCH", "http://127.0.0.1:9200")
DAY = 86_400_000
T0 = int(datetime(2024, 3, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)


def letter(offset: int, received_ms: int = T0, **fields: object) -> DeadLetter:
    values: dict[str, object] = {
        "raw": b"\xff not json " + bytes([offset % 256]),
        "code": "not_json",
        "message": "not one JSON value",
        "field_path": None,
        "topic": "shop.events.raw",
        "partition": 0,
        "offset": offset,
        "received_ms": received_ms,
    }
    values.update(fields)
    return DeadLetter(**values)  # type: ignore[arg-type]  # test helper: fields by name


def _opened(opener: type, config: object) -> object:
    try:
        return opener(config)
    except BackendUnavailableError as exc:
        pytest.fail(f"{exc} (tests: or set RTML_TEST_KAFKA / RTML_TEST_SEARCH)", pytrace=False)


# -- search ---------------------------------------------------------------------------------


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"rtml-test-dls-{uuid.uuid4().hex[:10]}"
    yield name
    try:
        with httpx.Client(base_url=SEARCH, timeout=10) as http:
            http.delete(f"/{name}-*")
            http.delete(f"/_index_template/{name}")
    except httpx.HTTPError:
        pass


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(base_url=SEARCH, timeout=10) as client:
        yield client


@pytest.fixture
def search_sink(prefix: str) -> Iterator[OpenSearchDeadLetterSink]:
    sink = _opened(OpenSearchDeadLetterSink, OpenSearchDeadLetterConfig(url=SEARCH, index_prefix=prefix))
    assert isinstance(sink, OpenSearchDeadLetterSink)
    yield sink
    sink.close()


@pytest.mark.integration
@pytest.mark.search
def test_one_index_per_utc_day_with_position_ids(
    search_sink: OpenSearchDeadLetterSink, prefix: str, http: httpx.Client
) -> None:
    letters = [letter(i, received_ms=T0 + (i % 3) * DAY) for i in range(9)]
    letters.append(
        letter(99, received_ms=int(datetime(2024, 3, 3, 23, 59, 59, 999_000, tzinfo=UTC).timestamp() * 1000))
    )
    search_sink.write(letters)
    search_sink.flush()

    indices = http.get(f"/_cat/indices/{prefix}-*", params={"format": "json"}).json()
    counts = {row["index"]: int(row["docs.count"]) for row in indices}
    assert counts == {f"{prefix}-2024.03.01": 3, f"{prefix}-2024.03.02": 3, f"{prefix}-2024.03.03": 4}

    doc = http.get(f"/{prefix}-2024.03.02/_doc/shop.events.raw-0-1").json()
    assert doc["found"] is True
    assert base64.b64decode(doc["_source"]["raw"]) == letters[1].raw
    assert doc["_source"]["received"] == "2024-03-02T12:00:00.000Z"
    assert doc["_source"]["code"] == "not_json"


@pytest.mark.integration
@pytest.mark.search
def test_the_index_template_is_created_with_the_mapping(
    search_sink: OpenSearchDeadLetterSink, prefix: str, http: httpx.Client
) -> None:
    templates = http.get(f"/_index_template/{prefix}").json()["index_templates"]
    template = templates[0]["index_template"]
    assert template["index_patterns"] == [f"{prefix}-*"]
    fields = template["template"]["mappings"]["properties"]
    assert {name: fields[name]["type"] for name in ("code", "message", "field_path", "received", "raw")} == {
        "code": "keyword",
        "message": "text",
        "field_path": "keyword",
        "received": "date",
        "raw": "binary",
    }
    assert fields["partition"]["type"] == "integer" and fields["offset"]["type"] == "long"

    search_sink.write([letter(1)])  # an index made from the template has that mapping
    mapping = http.get(f"/{prefix}-2024.03.01/_mapping").json()[f"{prefix}-2024.03.01"]["mappings"]
    assert mapping["dynamic"] == "strict"
    assert mapping["properties"]["code"]["type"] == "keyword"


@pytest.mark.integration
@pytest.mark.search
def test_an_existing_template_is_left_alone(prefix: str, http: httpx.Client) -> None:
    mine = {"index_patterns": [f"{prefix}-*"], "priority": 500, "_meta": {"owner": "ops"}}
    assert http.put(f"/_index_template/{prefix}", json=mine).status_code == 200

    sink = _opened(OpenSearchDeadLetterSink, OpenSearchDeadLetterConfig(url=SEARCH, index_prefix=prefix))
    assert isinstance(sink, OpenSearchDeadLetterSink)
    sink.close()

    template = http.get(f"/_index_template/{prefix}").json()["index_templates"][0]["index_template"]
    assert template["_meta"] == {"owner": "ops"}


@pytest.mark.integration
@pytest.mark.search
def test_per_item_bulk_errors_name_the_letter(
    search_sink: OpenSearchDeadLetterSink, prefix: str, http: httpx.Client
) -> None:
    # An index made by someone else, where `code` is a number: the letter cannot go in.
    bad = {"mappings": {"properties": {"code": {"type": "long"}}}}
    assert http.put(f"/{prefix}-2024.03.01", json=bad).status_code == 200

    with pytest.raises(RtmlError, match=r"refused 1 of 2 dead letters .*shop\.events\.raw-0-1"):
        search_sink.write([letter(1), letter(2, received_ms=T0 + DAY)])

    search_sink.flush()
    assert http.get(f"/{prefix}-2024.03.02/_count").json()["count"] == 1


@pytest.mark.integration
@pytest.mark.search
def test_big_batches_are_split_into_several_bulk_requests(prefix: str) -> None:
    config = OpenSearchDeadLetterConfig(url=SEARCH, index_prefix=prefix, batch_size=7)
    sink = _opened(OpenSearchDeadLetterSink, config)
    assert isinstance(sink, OpenSearchDeadLetterSink)
    try:
        sink.write([letter(i) for i in range(50)])
        sink.flush()
        assert sink.count() == 50
    finally:
        sink.close()


# -- kafka ----------------------------------------------------------------------------------


@pytest.fixture
def kafka_sink() -> Iterator[KafkaDeadLetterSink]:
    topic = f"rtml-test-dlk-{uuid.uuid4().hex[:10]}"
    sink = _opened(KafkaDeadLetterSink, KafkaDeadLetterConfig(bootstrap_servers=KAFKA, topic=topic))
    assert isinstance(sink, KafkaDeadLetterSink)
    yield sink
    sink.close()
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": KAFKA, "logger": logging.getLogger(__name__)})
    for future in admin.delete_topics([topic], request_timeout=10).values():
        try:
            future.result(timeout=15)
        except Exception:  # noqa: S110 - best-effort cleanup
            pass


def _consume_all(topic: str, count: int) -> list:  # type: ignore[type-arg]
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"rtml-test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < count and time.monotonic() < deadline:
        got += [m for m in consumer.consume(count, timeout=0.5) if m.error() is None]
    consumer.close()
    return got


@pytest.mark.integration
@pytest.mark.kafka
def test_record_layout_original_bytes_key_and_headers(kafka_sink: KafkaDeadLetterSink) -> None:
    full = letter(5, raw=b"\x00\xff{", key=b"user-1", field_path="$.price", event_id="e-5", partition=2)
    bare = letter(6)
    kafka_sink.write([full, bare])
    kafka_sink.flush()

    first, second = _consume_all(kafka_sink.topic, 2)

    assert (first.value(), first.key(), first.timestamp()[1]) == (b"\x00\xff{", b"user-1", T0)
    assert dict(first.headers()) == {
        "rtml.error.code": b"not_json",
        "rtml.error.message": b"not one JSON value",
        "rtml.error.field": b"$.price",
        "rtml.source.topic": b"shop.events.raw",
        "rtml.source.partition": b"2",
        "rtml.source.offset": b"5",
        "rtml.received_ms": str(T0).encode(),
        "rtml.event_id": b"e-5",
    }
    assert second.key() is None
    assert "rtml.error.field" not in dict(second.headers())
    assert "rtml.event_id" not in dict(second.headers())


@pytest.mark.integration
@pytest.mark.kafka
def test_letters_in_the_validators_transaction(kafka_sink: KafkaDeadLetterSink) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": KAFKA, "transactional.id": f"rtml-test-{uuid.uuid4().hex}"})
    producer.init_transactions(10)

    def send(letters: list[DeadLetter]) -> None:
        for record in kafka_sink.to_records(letters):
            producer.produce(
                kafka_sink.topic,
                value=record.value,
                key=record.key,
                headers=list(record.headers),
                timestamp=record.timestamp_ms or 0,
            )

    producer.begin_transaction()
    send([letter(i) for i in range(5)])
    producer.abort_transaction(10)  # a crash before the commit: none of them counts
    producer.begin_transaction()
    send([letter(i) for i in range(5)])
    producer.flush(10)  # in the log, not committed yet: not counted
    assert kafka_sink.count() == 0
    producer.commit_transaction(10)

    # The commit markers are written asynchronously: the letters show up once, never twice.
    counts = [kafka_sink.count()]
    deadline = time.monotonic() + 30
    while counts[-1] < 5 and time.monotonic() < deadline:
        counts.append(kafka_sink.count())
    assert counts[-1] == 5 and max(counts) == 5
    assert kafka_sink.recent(10) == [letter(i) for i in range(5)]


@pytest.mark.integration
@pytest.mark.kafka
def test_a_plain_rewrite_is_in_the_topic_twice_but_counted_once(kafka_sink: KafkaDeadLetterSink) -> None:
    letters = [letter(i) for i in range(3)]
    kafka_sink.write(letters)
    kafka_sink.flush()
    kafka_sink.write(letters)  # a validator re-processing after a crash, without transactions
    kafka_sink.flush()

    assert len(_consume_all(kafka_sink.topic, 6)) == 6
    assert kafka_sink.count() == 3
    assert kafka_sink.counts_by_code() == {"not_json": 3}
