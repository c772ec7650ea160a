"""Producers on real Kafka: the raw topic holds the Confluent wire format with the schema id
registered in rtml's registry, and Confluent's own JSONDeserializer reads it back."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastapi.testclient import TestClient

from rtml import Producer
from rtml.backends.schema_store import open_schema_store
from rtml.datagen import generate
from rtml.project import RAW_EVENTS, Project
from rtml.services.registry.client import value_subject
from rtml.services.registry.registry import SchemaRegistry
from rtml.services.registry.server import RegistryServer
from rtml.services.server.app import create_app
from rtml.services.validator.factory import build_validator
from rtml.testing import example_project

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def kafka_project(tmp_path: Path, bootstrap: str) -> Project:
    root = example_project(tmp_path / "shop").root
    environ = {
        "RTML_PROJECT": f"test-{uuid.uuid4().hex[:10]}",  # a fresh raw topic per test
        "RTML_EVENT_LOG__TYPE": "kafka",
        "RTML_EVENT_LOG__BOOTSTRAP_SERVERS": bootstrap,
    }
    return Project.load(root, environ=environ)


def consume(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
        # a little longer: nothing more may arrive than was sent
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    return messages


def registered_id(project: Project) -> int:
    store = open_schema_store(project.config.schema_registry)
    try:
        registry = SchemaRegistry(store)
        return registry.version(value_subject(project), "latest").schema.id
    finally:
        store.close()


def valid_lines(n: int) -> list[bytes]:
    return generate(n, seed=3, dirty_rate=0.0).lines


def test_producer_writes_the_wire_format_that_confluent_reads(tmp_path: Path, kafka_bootstrap: str) -> None:
    project = kafka_project(tmp_path, kafka_bootstrap)
    lines = valid_lines(50)
    events: list[dict[str, Any]] = [json.loads(line) for line in lines]
    with Producer(project) as producer:
        assert producer.wire_format == "confluent"
        for item in events:
            producer.send(item)
    schema_id = registered_id(project)  # registered by the producer (auto_register)
    topic = project.topic(RAW_EVENTS)
    messages = consume(kafka_bootstrap, topic, len(events))
    assert len(messages) == len(events)
    for message in messages:
        value = message.value()
        assert value[:1] == b"\x00" and int.from_bytes(value[1:5], "big") == schema_id
        assert message.key() == str(json.loads(value[5:])["user_id"]).encode()
        assert message.headers() == [("source", b"events")]

    store = open_schema_store(project.config.schema_registry)
    try:
        with RegistryServer(store) as server:
            client = SchemaRegistryClient({"url": server.url})
            deserialize = JSONDeserializer(None, schema_registry_client=client)
            context = SerializationContext(topic, MessageField.VALUE)
            decoded = [deserialize(m.value(), context) for m in messages]
    finally:
        store.close()
    key = lambda e: e["event_id"]  # noqa: E731
    assert sorted(decoded, key=key) == sorted(events, key=key)

    validator = build_validator(project, project.config.validator)  # knows the id now
    outcomes = validator.validate_many([m.value() for m in messages])
    assert all(o.ok and o.schema_id == schema_id for o in outcomes)  # type: ignore[union-attr]


def test_post_events_on_kafka_is_durable_and_framed(tmp_path: Path, kafka_bootstrap: str) -> None:
    project = kafka_project(tmp_path, kafka_bootstrap)
    lines = valid_lines(30) + [b"{not json"]
    with TestClient(create_app(project)) as client:
        reply = client.post(
            "/events", content=b"\n".join(lines), headers={"Content-Type": "application/x-ndjson"}
        )
    assert reply.status_code == 200, reply.text
    assert (reply.json()["received"], reply.json()["invalid"]) == (31, 1)
    schema_id = registered_id(project)
    messages = consume(kafka_bootstrap, project.topic(RAW_EVENTS), len(lines))
    header = b"\x00" + schema_id.to_bytes(4, "big")
    assert sorted(m.value() for m in messages) == sorted(header + line for line in lines)


def test_kafka_down_is_503(tmp_path: Path) -> None:
    root = example_project(tmp_path / "shop").root
    environ = {"RTML_EVENT_LOG__TYPE": "kafka", "RTML_EVENT_LOG__BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    project = Project.load(root, environ=environ)
    with TestClient(create_app(project)) as client:
        reply = client.post("/events", json=json.loads(valid_lines(1)[0]))
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "5"
    assert "127.0.0.1:1" in reply.json()["message"]
