"""The registry's REST API over plain HTTP: Confluent's bodies, statuses and error codes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rtml.backends.schema_store import (
    EmbeddedSchemaRegistryConfig,
    PostgresSchemaRegistryConfig,
    open_schema_store,
)
from rtml.services.logging import service_logger
from rtml.services.registry.app import MEDIA_TYPE, create_app

CT = {"Content-Type": MEDIA_TYPE}
USER_V1 = {"type": "record", "name": "User", "fields": [{"name": "id", "type": "long"}]}
USER_V2 = {
    "type": "record",
    "name": "User",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "email", "type": ["null", "string"], "default": None},
    ],
}
USER_BAD = {
    "type": "record",
    "name": "User",
    "fields": [{"name": "id", "type": "long"}, {"name": "age", "type": "int"}],
}


@pytest.fixture
def log_stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def client(log_stream: io.StringIO) -> Iterator[TestClient]:
    store = open_schema_store(EmbeddedSchemaRegistryConfig(path=Path(":memory:")))
    logger = service_logger(f"rtml.registry.test.{id(log_stream)}", stream=log_stream)
    with TestClient(create_app(store, logger=logger)) as c:
        yield c
    store.close()


def avro(doc: Any) -> dict[str, Any]:
    return {"schema": json.dumps(doc)}


def register(client: TestClient, subject: str, body: dict[str, Any]) -> Any:
    return client.post(f"/subjects/{subject}/versions", json=body, headers=CT)


def error(response: Any) -> tuple[int, int]:
    body = response.json()
    assert set(body) == {"error_code", "message"}, body
    assert response.headers["content-type"].startswith(MEDIA_TYPE)
    return response.status_code, body["error_code"]


def test_register_is_idempotent_and_ids_are_global(client: TestClient) -> None:
    first = register(client, "users-value", avro(USER_V1))
    assert first.status_code == 200 and first.json() == {"id": 1, "version": 1}
    assert first.headers["content-type"].startswith(MEDIA_TYPE)
    spaced = {"schema": json.dumps(USER_V1, indent=4)}  # same schema, other white space
    assert register(client, "users-value", spaced).json() == {"id": 1, "version": 1}
    assert register(client, "other-value", avro(USER_V1)).json() == {"id": 1, "version": 1}
    assert register(client, "users-value", avro(USER_V2)).json() == {"id": 2, "version": 2}
    assert client.get("/subjects").json() == ["other-value", "users-value"]
    assert client.get("/subjects/users-value/versions").json() == [1, 2]
    assert client.get("/schemas/ids/1/versions").json() == [
        {"subject": "other-value", "version": 1},
        {"subject": "users-value", "version": 1},
    ]
    assert client.get("/schemas/ids/1/subjects").json() == ["other-value", "users-value"]


def test_reads_of_versions_and_ids(client: TestClient) -> None:
    register(client, "u", avro(USER_V1))
    register(client, "u", avro(USER_V2))
    latest = client.get("/subjects/u/versions/latest").json()
    assert latest == {
        "subject": "u",
        "version": 2,
        "id": 2,
        "schema": json.dumps(USER_V2, separators=(",", ":")),
    }
    assert client.get("/subjects/u/versions/-1").json()["version"] == 2
    assert client.get("/subjects/u/versions/1").json()["id"] == 1
    assert json.loads(client.get("/subjects/u/versions/1/schema").text) == USER_V1
    assert client.get("/schemas/ids/2").json() == {"schema": latest["schema"]}
    assert json.loads(client.get("/schemas/ids/2/schema").text) == USER_V2
    assert client.get("/schemas/types").json() == ["JSON", "AVRO"]
    assert client.get("/subjects/u/versions/1/referencedby").json() == []
    json_schema = {"schema": json.dumps({"type": "string"}), "schemaType": "JSON"}
    assert register(client, "j", json_schema).json()["id"] == 3
    assert client.get("/schemas/ids/3").json() == {"schema": '{"type":"string"}', "schemaType": "JSON"}


def test_lookup(client: TestClient) -> None:
    register(client, "u", avro(USER_V1))
    found = client.post("/subjects/u", json={"schema": json.dumps(USER_V1, indent=2)}, headers=CT)
    assert found.status_code == 200
    assert {k: found.json()[k] for k in ("subject", "id", "version")} == {
        "subject": "u",
        "id": 1,
        "version": 1,
    }
    assert error(client.post("/subjects/u", json=avro(USER_V2), headers=CT)) == (404, 40403)
    assert error(client.post("/subjects/nope", json=avro(USER_V1), headers=CT)) == (404, 40401)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/subjects/nope/versions", 404, 40401),
        ("GET", "/subjects/nope/versions/1", 404, 40401),
        ("GET", "/subjects/u/versions/7", 404, 40402),
        ("GET", "/subjects/u/versions/0", 422, 42202),
        ("GET", "/subjects/u/versions/abc", 422, 42202),
        ("GET", "/subjects/u/versions/2147483648", 422, 42202),
        ("GET", "/schemas/ids/99", 404, 40403),
        ("GET", "/schemas/ids/x", 404, 40403),
        ("GET", "/schemas/ids/99/versions", 404, 40403),
        ("DELETE", "/subjects/nope", 404, 40401),
        ("DELETE", "/subjects/u/versions/9", 404, 40402),
        ("GET", "/config/u", 404, 40408),
        ("DELETE", "/config/u", 404, 40401),
        ("GET", "/no/such/route", 404, 404),
    ],
)
def test_not_found_and_invalid_codes(
    client: TestClient, method: str, path: str, status: int, code: int
) -> None:
    register(client, "u", avro(USER_V1))
    assert error(client.request(method, path)) == (status, code)


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"schema": "{not json"}, 42201, "not valid JSON"),
        ({"schema": '{"type": "nosuch"}'}, 42201, "Invalid Avro schema"),
        ({"schema": '{"type": 5}', "schemaType": "JSON"}, 42201, "Invalid JSON Schema"),
        ({"schema": '"int"', "schemaType": "PROTOBUF"}, 42201, "unsupported schema type"),
        ({"schema": ""}, 42201, "Empty schema"),
        ({"schemaType": "AVRO"}, 42201, "schema"),
        (
            {"schema": '"int"', "references": [{"name": "x", "subject": "s", "version": 1}]},
            42201,
            "references",
        ),
        ({"schema": '"int"', "id": 7}, 42205, "IMPORT"),
    ],
)
def test_invalid_schemas_are_42201_with_the_reason(
    client: TestClient, body: dict[str, Any], code: int, fragment: str
) -> None:
    response = register(client, "u", body)
    assert error(response) == (422, code)
    assert fragment in response.json()["message"]


def test_malformed_body_is_400(client: TestClient) -> None:
    response = client.post("/subjects/u/versions", content=b"{oops", headers=CT)
    assert error(response) == (400, 400)


def test_any_json_content_type_is_accepted(client: TestClient) -> None:
    body = json.dumps(avro(USER_V1))
    for content_type in (
        "application/json",
        "application/vnd.schemaregistry+json",
        "application/octet-stream",
    ):
        response = client.post("/subjects/u/versions", content=body, headers={"Content-Type": content_type})
        assert response.status_code == 200, response.text


def test_incompatible_schema_is_409(client: TestClient) -> None:
    register(client, "u", avro(USER_V1))
    response = register(client, "u", avro(USER_BAD))
    assert error(response) == (409, 409)
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in response.json()["message"]
    assert client.get("/subjects/u/versions").json() == [1]  # nothing registered


def test_config_endpoints(client: TestClient) -> None:
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert client.put("/config", json={"compatibility": "full"}, headers=CT).json() == {
        "compatibility": "FULL"
    }
    assert client.get("/config").json() == {"compatibilityLevel": "FULL"}
    assert client.get("/config/u?defaultToGlobal=true").json() == {"compatibilityLevel": "FULL"}
    assert error(client.get("/config/u")) == (404, 40408)
    assert client.put("/config/u", json={"compatibility": "NONE"}, headers=CT).json() == {
        "compatibility": "NONE"
    }
    assert client.get("/config/u").json() == {"compatibilityLevel": "NONE"}
    assert client.delete("/config/u").json() == {"compatibilityLevel": "NONE"}
    assert error(client.get("/config/u")) == (404, 40408)
    assert client.delete("/config").json() == {"compatibilityLevel": "FULL"}
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert error(client.put("/config", json={"compatibility": "SIDEWAYS"}, headers=CT)) == (422, 42203)
    assert error(client.put("/config", json={}, headers=CT)) == (422, 42203)


def test_levels_are_enforced_on_register(client: TestClient) -> None:
    register(client, "u", avro(USER_V1))
    client.put("/config/u", json={"compatibility": "NONE"}, headers=CT)
    assert register(client, "u", avro(USER_BAD)).status_code == 200
    client.put("/config/u", json={"compatibility": "FORWARD"}, headers=CT)
    # Forward: version 2 (id, age) must read data of the new schema, which lacks age.
    assert error(register(client, "u", avro(USER_V2))) == (409, 409)
    # A schema the subject already holds is returned as it is, with no check.
    assert register(client, "u", avro(USER_V1)).json() == {"id": 1, "version": 1}


def test_compatibility_endpoint(client: TestClient) -> None:
    # No version yet: anything is compatible with "latest".
    ok = client.post("/compatibility/subjects/u/versions/latest", json=avro(USER_V1), headers=CT)
    assert ok.json() == {"is_compatible": True}
    register(client, "u", avro(USER_V1))
    good = client.post(
        "/compatibility/subjects/u/versions/latest?verbose=true", json=avro(USER_V2), headers=CT
    )
    assert good.json() == {"is_compatible": True, "messages": []}
    bad = client.post("/compatibility/subjects/u/versions/1?verbose=True", json=avro(USER_BAD), headers=CT)
    assert bad.json()["is_compatible"] is False
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in bad.json()["messages"][0]
    quiet = client.post("/compatibility/subjects/u/versions/1", json=avro(USER_BAD), headers=CT)
    assert quiet.json() == {"is_compatible": False}
    every = client.post("/compatibility/subjects/u/versions", json=avro(USER_V2), headers=CT)
    assert every.json() == {"is_compatible": True}
    assert error(client.post("/compatibility/subjects/u/versions/5", json=avro(USER_V2), headers=CT)) == (
        404,
        40402,
    )
    assert error(client.post("/compatibility/subjects/x/versions/1", json=avro(USER_V2), headers=CT)) == (
        404,
        40401,
    )
    assert error(client.post("/compatibility/subjects/u/versions/0", json=avro(USER_V2), headers=CT)) == (
        422,
        42202,
    )
    assert error(client.post("/compatibility/subjects/u/versions/1", json={"schema": "{"}, headers=CT)) == (
        422,
        42201,
    )


def test_soft_and_permanent_deletes(client: TestClient) -> None:
    register(client, "u", avro(USER_V1))
    register(client, "u", avro(USER_V2))
    assert error(client.delete("/subjects/u/versions/1?permanent=true")) == (404, 40407)
    assert client.delete("/subjects/u/versions/1").json() == 1
    assert error(client.delete("/subjects/u/versions/1")) == (404, 40406)
    assert client.get("/subjects/u/versions").json() == [2]
    assert client.get("/subjects/u/versions?deleted=true").json() == [1, 2]
    assert error(client.get("/subjects/u/versions/1")) == (404, 40402)
    assert client.get("/subjects/u/versions/1?deleted=true").json()["id"] == 1
    assert client.get("/schemas/ids/1").status_code == 200  # a soft-deleted schema stays readable by id
    assert client.delete("/subjects/u/versions/1?permanent=true").json() == 1
    assert error(client.delete("/subjects/u?permanent=true")) == (404, 40405)
    assert client.delete("/subjects/u").json() == [2]
    assert error(client.delete("/subjects/u")) == (404, 40404)
    assert client.get("/subjects").json() == []
    assert client.get("/subjects?deleted=true").json() == ["u"]
    assert client.get("/subjects?deleted_only=true").json() == ["u"]
    assert error(client.get("/subjects/u/versions")) == (404, 40401)
    # Re-registering after a soft delete makes a new version; numbers are never reused.
    assert register(client, "u", avro(USER_V2)).json() == {"id": 2, "version": 3}
    client.delete("/subjects/u")
    assert client.delete("/subjects/u?permanent=true").json() == [2, 3]
    assert client.get("/subjects?deleted=true").json() == []
    assert error(client.get("/schemas/ids/2")) == (404, 40403)
    assert register(client, "u", avro(USER_V2)).json() == {"id": 2, "version": 1}  # same id again


def test_subject_prefix_and_paging(client: TestClient) -> None:
    for subject in ("a-value", "b-value", "a-key"):
        register(client, subject, avro(USER_V1))
    assert client.get("/subjects?subjectPrefix=a-").json() == ["a-key", "a-value"]
    assert client.get("/subjects?offset=1&limit=1").json() == ["a-value"]


def test_health_metrics_and_json_logs(client: TestClient, log_stream: io.StringIO) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    register(client, "u", avro(USER_V1))
    client.get("/subjects/nope/versions")
    metrics = client.get("/metrics").text
    assert (
        'rtml_registry_requests_total{method="POST",route="/subjects/{subject}/versions",status="200"} 1.0'
        in metrics
    )
    assert 'route="/subjects/{subject}/versions",status="404"' in metrics
    assert "rtml_registry_request_duration_seconds_bucket" in metrics
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    missing = next(line for line in lines if line.get("status") == 404)
    assert missing["event"] == "http_request"
    assert missing["route"] == "/subjects/{subject}/versions"
    assert missing["error_code"] == 40401
    assert missing["ts"].endswith("+00:00")


def test_store_down_is_50001_not_a_hang(log_stream: io.StringIO) -> None:
    config = PostgresSchemaRegistryConfig(url="postgresql://rtml:rtml@127.0.0.1:9/rtml", connect_timeout_s=2)
    store = open_schema_store(config)
    app = create_app(
        store, logger=service_logger("rtml.registry.test.down", stream=log_stream, level=logging.INFO)
    )
    with TestClient(app) as c:
        for response in (c.get("/subjects"), register(c, "u", avro(USER_V1)), c.get("/config")):
            assert error(response) == (500, 50001)
            assert "backend data store" in response.json()["message"]
            assert "PostgreSQL" in response.json()["message"]
        health = c.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
    store.close()
