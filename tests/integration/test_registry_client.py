"""rtml's registry driven by the real Confluent client, on a real uvicorn server.

Every test runs twice: on the embedded SQLite store and on PostgreSQL (the server of
``scripts/services.sh``, or ``RTML_TEST_PG_URL``; unreachable FAILS, never skips).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from rtml.backends.schema_store import (
    EmbeddedSchemaRegistryConfig,
    PostgresSchemaRegistryConfig,
    SchemaStore,
    open_schema_store,
)
from rtml.errors import BackendUnavailableError
from rtml.project import EXAMPLE_DIR, Project
from rtml.services.registry import register_project_schemas, value_subject
from rtml.services.registry.client import RegistryRequestError
from rtml.services.registry.server import RegistryServer

pytestmark = pytest.mark.integration

USER_V1 = {
    "type": "record",
    "name": "User",
    "namespace": "shop",
    "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}],
}
USER_V2 = {
    **USER_V1,
    "fields": [*USER_V1["fields"], {"name": "email", "type": ["null", "string"], "default": None}],
}
USER_BAD = {**USER_V1, "fields": [*USER_V1["fields"], {"name": "age", "type": "int"}]}
ORDER = {
    "type": "object",
    "properties": {"order_id": {"type": "integer"}, "total": {"type": "number", "minimum": 0}},
    "required": ["order_id", "total"],
    "additionalProperties": False,
}


@pytest.fixture(params=["embedded", "postgres"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, pg_url: str, start_hint: str
) -> Iterator[SchemaStore]:
    namespace = f"rtml_test_{uuid.uuid4().hex[:12]}"
    if request.param == "embedded":
        store = open_schema_store(EmbeddedSchemaRegistryConfig(path=tmp_path / "registry.db"))
    else:
        store = open_schema_store(PostgresSchemaRegistryConfig(url=pg_url, namespace=namespace))
        try:
            store.get_config(None)
        except BackendUnavailableError as exc:
            pytest.fail(f"{exc} ({start_hint})", pytrace=False)
    yield store
    store.close()
    if request.param == "postgres":
        import psycopg

        with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {namespace} CASCADE")


@pytest.fixture
def server(store: SchemaStore) -> Iterator[RegistryServer]:
    with RegistryServer(store) as running:
        yield running


@pytest.fixture
def client(server: RegistryServer) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": server.url, "max.retries": 0})


def ctx(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def wire_id(data: bytes) -> int:
    """The schema id of a Confluent wire-format message (magic byte 0, 4-byte id)."""
    assert data[0] == 0, "magic byte"
    return int(struct.unpack(">I", data[1:5])[0])


def test_avro_serializer_round_trip(client: SchemaRegistryClient) -> None:
    serializer = AvroSerializer(client, json.dumps(USER_V1))
    data = serializer({"id": 7, "name": "ada"}, ctx("users"))
    schema_id = wire_id(data)
    assert schema_id == client.get_latest_version("users-value").schema_id
    assert AvroDeserializer(client)(data, ctx("users")) == {"id": 7, "name": "ada"}
    # A fresh client (empty caches) resolves the id over HTTP.
    fresh = SchemaRegistryClient({"url": client.config()["url"]})
    assert AvroDeserializer(fresh)(data, ctx("users")) == {"id": 7, "name": "ada"}


def test_json_serializer_round_trip(client: SchemaRegistryClient) -> None:
    serializer = JSONSerializer(json.dumps(ORDER), client)
    data = serializer({"order_id": 1, "total": 9.5}, ctx("orders"))
    assert data[5:] == b'{"order_id":1,"total":9.5}' or json.loads(data[5:]) == {"order_id": 1, "total": 9.5}
    registered = client.get_schema(wire_id(data))
    assert registered.schema_type == "JSON" and json.loads(registered.schema_str) == ORDER
    fresh = SchemaRegistryClient({"url": client.config()["url"]})
    assert JSONDeserializer(json.dumps(ORDER), schema_registry_client=fresh)(data, ctx("orders")) == {
        "order_id": 1,
        "total": 9.5,
    }


def test_register_get_lookup(client: SchemaRegistryClient) -> None:
    schema = Schema(json.dumps(USER_V1), "AVRO")
    schema_id = client.register_schema("users-value", schema)
    assert client.register_schema("users-value", schema) == schema_id  # idempotent
    latest = client.get_latest_version("users-value")
    assert (latest.schema_id, latest.version, latest.subject) == (schema_id, 1, "users-value")
    assert json.loads(client.get_schema(schema_id).schema_str) == USER_V1
    found = client.lookup_schema("users-value", Schema(json.dumps(USER_V1, indent=2), "AVRO"))
    assert (found.schema_id, found.version) == (schema_id, 1)
    other = SchemaRegistryClient({"url": client.config()["url"]})  # no cache
    assert other.register_schema("audit-value", Schema(json.dumps(USER_V1), "AVRO")) == schema_id
    assert sorted(client.get_subjects()) == ["audit-value", "users-value"]
    v2 = client.register_schema("users-value", Schema(json.dumps(USER_V2), "AVRO"))
    assert v2 != schema_id
    assert client.get_versions("users-value") == [1, 2]
    assert client.get_version("users-value", 1).schema_id == schema_id
    assert {(v.subject, v.version) for v in client.get_schema_versions(schema_id)} == {
        ("users-value", 1),
        ("audit-value", 1),
    }
    assert client.get_schema_types() == ["JSON", "AVRO"]


def test_compatibility_settings_and_a_refused_change(client: SchemaRegistryClient) -> None:
    client.register_schema("users-value", Schema(json.dumps(USER_V1), "AVRO"))
    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility("users-value", "FULL")
    assert client.get_compatibility("users-value") == "FULL"
    assert client.test_compatibility("users-value", Schema(json.dumps(USER_V2), "AVRO")) is True
    assert (
        client.test_compatibility("users-value", Schema(json.dumps(USER_BAD), "AVRO"), verbose=True) is False
    )
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema("users-value", Schema(json.dumps(USER_BAD), "AVRO"))
    assert refused.value.http_status_code == 409
    assert refused.value.error_code == 409
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in refused.value.error_message
    client.set_compatibility("users-value", "NONE")
    assert client.register_schema("users-value", Schema(json.dumps(USER_BAD), "AVRO")) > 0
    client.set_compatibility(level="FORWARD_TRANSITIVE")
    assert client.get_compatibility() == "FORWARD_TRANSITIVE"
    config = client.get_config("users-value")
    assert str(config.compatibility_level) == "NONE"


def test_errors_reach_the_client_with_confluent_codes(client: SchemaRegistryClient) -> None:
    client.register_schema("users-value", Schema(json.dumps(USER_V1), "AVRO"))
    cases = [
        (lambda: client.get_latest_version("nope-value"), 404, 40401),
        (lambda: client.get_version("users-value", 9), 404, 40402),
        (lambda: client.get_schema(999), 404, 40403),
        (lambda: client.register_schema("x", Schema("{oops", "AVRO")), 422, 42201),
        (lambda: client.register_schema("x", Schema('{"type": 3}', "JSON")), 422, 42201),
        (lambda: client.get_compatibility("users-value"), 404, 40408),
    ]
    for call, status, code in cases:
        with pytest.raises(SchemaRegistryError) as caught:
            call()
        assert (caught.value.http_status_code, caught.value.error_code) == (status, code), caught.value


def test_deletes(client: SchemaRegistryClient) -> None:
    client.register_schema("users-value", Schema(json.dumps(USER_V1), "AVRO"))
    client.register_schema("users-value", Schema(json.dumps(USER_V2), "AVRO"))
    assert client.delete_version("users-value", 1) == 1
    assert client.get_versions("users-value") == [2]
    assert client.delete_subject("users-value") == [2]
    assert client.get_subjects() == []
    assert client.delete_subject("users-value", permanent=True) == [1, 2]
    with pytest.raises(SchemaRegistryError) as caught:
        client.get_versions("users-value", deleted=True)
    assert caught.value.error_code == 40401


def test_register_project_schemas(
    tmp_path: Path, server: RegistryServer, client: SchemaRegistryClient
) -> None:
    root = tmp_path / "shop"
    shutil.copytree(EXAMPLE_DIR, root, ignore=shutil.ignore_patterns(".rtml", "__pycache__"))
    project = Project.load(root, environ={})
    subject = value_subject(project)
    assert subject == "ecommerce.events.raw-value"

    ids = register_project_schemas(project, server.url)
    assert register_project_schemas(project, client) == ids  # same schema, same id, by either path
    registered = client.get_latest_version(subject)
    assert registered.schema.schema_type == "JSON"
    assert json.loads(registered.schema.schema_str) == project.definitions.schemas["events"].document
    assert ids == {"events": registered.schema_id}

    # A producer serialises an event with the registered schema; a consumer reads it back.
    event = {
        "event_id": "e-1",
        "event_time": "2019-10-01T00:00:00Z",
        "event_type": "cart",
        "product_id": 1,
        "category_id": 2,
        "price": 9.99,
        "user_id": 3,
    }
    serializer = JSONSerializer(
        registered.schema.schema_str,
        client,
        conf={"auto.register.schemas": False, "use.latest.version": True},
    )
    data = serializer(event, ctx(project.topic("events.raw")))
    assert wire_id(data) == ids["events"]
    assert (
        JSONDeserializer(registered.schema.schema_str, schema_registry_client=client)(data, ctx("x")) == event
    )

    # An incompatible change of the source's schema is refused with the registry's reason.
    schema_file = root / "schemas" / "event.schema.json"
    doc = json.loads(schema_file.read_text())
    doc["properties"]["event_type"]["enum"] = ["view", "cart"]
    schema_file.write_text(json.dumps(doc))
    with pytest.raises(RegistryRequestError) as refused:
        register_project_schemas(Project.load(root, environ={}), server.url)
    assert refused.value.http_status == 409 and refused.value.error_code == 409
    assert "ENUM_ARRAY_NARROWED" in str(refused.value)


def test_register_project_schemas_with_the_registry_down(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    shutil.copytree(EXAMPLE_DIR, root, ignore=shutil.ignore_patterns(".rtml", "__pycache__"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BackendUnavailableError, match="cannot be reached"):
        register_project_schemas(Project.load(root, environ={}), f"http://127.0.0.1:{port}")


CLI = """
import sys, typer
from rtml.cli import registry_cmd
app = typer.Typer()
registry_cmd.register(app)
app(sys.argv[1:])
"""


def test_run_registry_command_serves_the_project(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    shutil.copytree(EXAMPLE_DIR, root, ignore=shutil.ignore_patterns(".rtml", "__pycache__"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "RTML_SCHEMA_REGISTRY__PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-c", CLI, "run", "registry", "--project", str(root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        health: Any = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health is not None and health.json() == {"status": "ok"}, process.poll()
        ids = register_project_schemas(Project.load(root, environ={}), url)
        assert ids == {"events": 1}
        assert (root / ".rtml" / "registry.db").is_file()  # the embedded store, under the project
    finally:
        process.terminate()
        output = process.communicate(timeout=15)[0].decode()
    assert '"event": "http_request"' in output  # one JSON log line per request
