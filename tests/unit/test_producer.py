"""``Producer`` and the raw records it writes, on the local event log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rtml import Producer
from rtml.backends.event_log.base import LogRecord
from rtml.backends.schema_store import open_schema_store
from rtml.definitions import Aggregation, Entity, FeatureView, Source
from rtml.definitions.loader import Definitions
from rtml.definitions.schema import from_json_schema
from rtml.errors import ConfigError, InvalidInputError, RtmlError
from rtml.project import RAW_EVENTS, Project
from rtml.raw_records import ProducerSettings, RawRecordEncoder, entity_key_fields
from rtml.services.registry.client import value_subject
from rtml.services.registry.registry import SchemaRegistry
from rtml.services.validator.factory import build_validator
from rtml.testing import example_project
from rtml.timeutil import parse_timestamp, to_millis


def event(n: int, **changes: Any) -> dict[str, Any]:
    base = {
        "event_id": f"e-{n}",
        "event_time": "2019-10-01T00:00:34.123Z",
        "event_type": "view",
        "product_id": 1000 + n,
        "category_id": 7,
        "price": 12.5,
        "user_id": 500 + n,
    }
    return {**base, **changes}


def raw_topic(project: Project) -> list[LogRecord]:
    log = project.event_log()
    try:
        consumer = log.consumer([project.topic(RAW_EVENTS)], "test-reader")
        records: list[LogRecord] = []
        while batch := consumer.poll(max_records=10_000, timeout=0.1):
            records += batch
        consumer.close()
        return records
    finally:
        log.close()


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return example_project(tmp_path / "shop", event_log="local")


def test_send_writes_plain_json_keyed_by_user(project: Project) -> None:
    with Producer(project, batch_size=2) as producer:
        assert producer.wire_format == "json"
        producer.send(event(1))
        producer.send(event(2, event_time=datetime(2019, 10, 2, 8, tzinfo=UTC)))
        producer.send_raw(b'{"broken": ')
    records = raw_topic(project)
    assert [r.value for r in records] == [
        json.dumps(event(1), separators=(",", ":")).encode(),
        json.dumps(event(2, event_time="2019-10-02T08:00:00Z"), separators=(",", ":")).encode(),
        b'{"broken": ',
    ]
    assert [r.key for r in records] == [b"501", b"502", None]
    assert records[1].timestamp_ms == to_millis(parse_timestamp("2019-10-02T08:00:00Z"))
    assert all(r.headers == (("source", b"events"),) for r in records)
    assert producer.sent == 3
    validator = build_validator(project, project.config.validator)
    assert [o.ok for o in validator.validate_many([r.value for r in records])] == [True, True, False]


def test_producer_from_a_directory_and_explicit_flush(project: Project) -> None:
    producer = Producer(project.root, environ={})
    producer.send(event(1))
    assert raw_topic(project) == []  # batched, not yet handed to the log
    producer.flush()
    assert len(raw_topic(project)) == 1
    producer.close()
    producer.close()  # harmless
    with pytest.raises(RtmlError, match="closed"):
        producer.send(event(2))


def test_bad_input_is_refused_with_a_reason(project: Project) -> None:
    with Producer(project) as producer:
        with pytest.raises(InvalidInputError, match="no timezone"):
            producer.send(event(1, event_time=datetime(2019, 10, 1)))  # noqa: DTZ001
        with pytest.raises(InvalidInputError, match="cannot be sent as JSON"):
            producer.send(event(1, price=object()))
        with pytest.raises(InvalidInputError, match="takes bytes"):
            producer.send_raw("text")  # type: ignore[arg-type]
    assert raw_topic(project) == []


def test_confluent_wire_format_on_the_local_log(tmp_path: Path) -> None:
    root = example_project(tmp_path / "shop").root
    environ = {"RTML_EVENT_LOG__TYPE": "local", "RTML_PRODUCER__WIRE_FORMAT": "confluent"}
    project = Project.load(root, environ=environ)
    with Producer(project) as producer:
        producer.send(event(1))
        producer.send_raw(b"\x00\x00\x00\x00\x09{}")  # already framed: kept as it is
    store = open_schema_store(project.config.schema_registry)
    try:
        versions = SchemaRegistry(store).versions(value_subject(project))
        schema_id = SchemaRegistry(store).version(value_subject(project), versions[-1]).schema.id
    finally:
        store.close()
    first, second = (r.value for r in raw_topic(project))
    assert first[:1] == b"\x00" and int.from_bytes(first[1:5], "big") == schema_id
    assert json.loads(first[5:]) == event(1)
    assert second == b"\x00\x00\x00\x00\x09{}"
    validator = build_validator(project, project.config.validator)
    outcome = validator.validate(first)
    assert outcome.ok and outcome.schema_id == schema_id  # type: ignore[union-attr]


def test_without_auto_register_a_missing_schema_is_an_error(tmp_path: Path) -> None:
    root = example_project(tmp_path / "shop").root
    environ = {"RTML_PRODUCER__WIRE_FORMAT": "confluent", "RTML_PRODUCER__AUTO_REGISTER": "false"}
    with pytest.raises(ConfigError, match="rtml apply"):
        Producer(root, environ=environ)


@pytest.mark.parametrize(
    ("wire_format", "log", "resolved"),
    [
        ("auto", "kafka", "confluent"),
        ("auto", "local", "json"),
        ("json", "kafka", "json"),
        ("confluent", "local", "confluent"),
    ],
)
def test_wire_format_resolution(wire_format: str, log: str, resolved: str) -> None:
    assert ProducerSettings(wire_format=wire_format).resolved_format(log) == resolved  # type: ignore[arg-type]


def test_entity_key_fields() -> None:
    schema = from_json_schema(
        {
            "type": "object",
            "properties": {"shop": {"type": "string"}, "sku": {"type": "integer"}, "t": {"type": "string"}},
        }
    )
    source = Source(name="sales", schema="s.json", timestamp_field="t", id_field="sku")
    shop = Entity(name="shop", join_keys=["shop"])
    item = Entity(name="item", join_keys=["shop", "sku"])
    defs = Definitions(root=Path("."), entities={"shop": shop, "item": item}, sources={"sales": source})
    defs.schemas["sales"] = schema
    assert entity_key_fields(defs, source) == ("shop",)  # no view: the first entity that fits
    count = Aggregation(function="count", windows=["1h"], name="n")
    defs.feature_views["v"] = FeatureView(name="v", entities=[item], source=source, aggregations=[count])
    assert entity_key_fields(defs, source) == ("shop", "sku")  # the entity the views use


def test_encoder_keys_and_times() -> None:
    encoder = RawRecordEncoder(source="s", key_fields=("shop", "sku"), timestamp_field="t", schema_id=3)
    record = encoder.record(b'{"shop": "a|b", "sku": 7, "t": "2019-10-01 00:00:34 UTC"}')
    assert record.key == b'["a|b","7"]'
    assert record.timestamp_ms == to_millis(parse_timestamp("2019-10-01T00:00:34Z"))
    assert record.value[:5] == b"\x00\x00\x00\x00\x03"
    assert encoder.record(b'{"shop": "a", "sku": true, "t": "1969-01-01T00:00:00Z"}').key is None
    assert encoder.record(b'{"shop": "a", "sku": 1, "t": "1969-01-01T00:00:00Z"}').timestamp_ms is None
    assert encoder.record(b"[1]").key is None
