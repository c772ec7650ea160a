"""``POST /events`` on the example project with the local (SQLite) event log."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rtml.backends.event_log.base import LogRecord
from rtml.core.validation import Invalid
from rtml.datagen import generate
from rtml.errors import InvalidInputError
from rtml.project import RAW_EVENTS, Project
from rtml.services.server.app import create_app
from rtml.services.server.errors import PayloadTooLargeError
from rtml.services.server.ingest_body import read_limited, split_events
from rtml.services.server.settings import IngestSettings, ServerSettings
from rtml.services.validator.factory import build_validator
from rtml.testing import example_project
from rtml.timeutil import parse_timestamp, to_millis

NDJSON = {"Content-Type": "application/x-ndjson"}


def event(n: int, **changes: Any) -> dict[str, Any]:
    base = {
        "event_id": f"e-{n}",
        "event_time": "2019-10-01T00:00:34.123Z",
        "event_type": "view",
        "product_id": 1000 + n,
        "category_id": 7,
        "category_code": None,
        "brand": "acme",
        "price": 12.5,
        "user_id": 500 + n,
        "user_session": "s-1",
    }
    return {**base, **changes}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return example_project(tmp_path / "shop", event_log="local")


@pytest.fixture
def client(project: Project) -> Iterator[TestClient]:
    with TestClient(create_app(project)) as client:
        yield client


def raw_topic(project: Project) -> list[LogRecord]:
    """Every record of the raw topic, read by a fresh consumer group."""
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


def expected_key(line: bytes) -> bytes | None:
    try:
        user_id = json.loads(line).get("user_id")
    except (ValueError, AttributeError):
        return None
    return str(user_id).encode() if isinstance(user_id, int) and not isinstance(user_id, bool) else None


def test_array_body_is_written_keyed_and_stamped(client: TestClient, project: Project) -> None:
    events = [event(1), event(2, event_time="2019-10-02T10:00:00+02:00"), event(3)]
    reply = client.post("/events", json=events)
    assert reply.status_code == 200
    assert reply.json() == {
        "received": 3,
        "valid": 3,
        "invalid": 0,
        "format": "array",
        "topic": "ecommerce.events.raw",
        "results": [],
    }
    records = raw_topic(project)
    assert [json.loads(r.value) for r in records] == events
    assert [r.key for r in records] == [b"501", b"502", b"503"]
    assert records[1].timestamp_ms == to_millis(parse_timestamp("2019-10-02T08:00:00Z"))
    assert all(r.headers == (("source", b"events"),) for r in records)


def test_array_elements_keep_their_exact_bytes(client: TestClient, project: Project) -> None:
    body = b'[ {"event_id": "x",   "weird": 1.50} ,\n  7, "text" ]'
    reply = client.post("/events", content=body, headers={"Content-Type": "application/json"})
    assert reply.json()["received"] == 3 and reply.json()["invalid"] == 3
    assert [r.value for r in raw_topic(project)] == [b'{"event_id": "x",   "weird": 1.50}', b"7", b'"text"']


def test_single_object(client: TestClient, project: Project) -> None:
    reply = client.post("/events", json=event(1))
    assert reply.status_code == 200
    assert reply.json()["received"] == 1 and reply.json()["valid"] == 1
    assert reply.json()["format"] == "object"
    assert [r.key for r in raw_topic(project)] == [b"501"]


def test_ndjson_of_the_generator_every_line_once_with_its_key(client: TestClient, project: Project) -> None:
    lines = generate(200, seed=1, dirty_rate=0.2).lines
    reply = client.post("/events", content=b"\n".join(lines) + b"\n", headers=NDJSON)
    assert reply.status_code == 200
    body = reply.json()
    outcomes = build_validator(project, project.config.validator).validate_many(lines)
    invalid = [i for i, o in enumerate(outcomes) if isinstance(o, Invalid)]
    assert invalid, "the generator's dirty lines include invalid events"
    assert body["received"] == 200 and body["format"] == "ndjson"
    assert body["invalid"] == len(invalid) and body["valid"] == 200 - len(invalid)
    assert [r["index"] for r in body["results"]] == invalid
    for result in body["results"]:
        outcome = outcomes[result["index"]]
        assert isinstance(outcome, Invalid)
        assert (result["ok"], result["code"], result["message"], result["field"]) == (
            False,
            outcome.code,
            outcome.message,
            outcome.field_path,
        )
    records = raw_topic(project)
    assert Counter(r.value for r in records) == Counter(lines)  # each line exactly once
    assert sorted((r.value, r.key) for r in records) == sorted((line, expected_key(line)) for line in lines)


def test_verbose_lists_every_event(client: TestClient) -> None:
    events = [event(1), event(2, price=-1), event(3, event_type="refund")]
    body = client.post("/events?verbose=true", json=events).json()
    assert body["valid"] == 1 and body["invalid"] == 2
    assert [(r["index"], r["ok"]) for r in body["results"]] == [(0, True), (1, False), (2, False)]
    assert body["results"][0]["event_id"] == "e-1"
    assert body["results"][1]["code"] == "out_of_range" and body["results"][1]["field"] == "$.price"
    assert body["results"][2]["code"] == "not_in_enum"
    quiet = client.post("/events", json=events).json()
    assert [r["index"] for r in quiet["results"]] == [1, 2]


def test_unparseable_body_is_forwarded_line_by_line(client: TestClient, project: Project) -> None:
    body = b'{"event_id": "cut short\nnot json at all\n\x00\xff\xfe binary\r\n\n'
    reply = client.post("/events", content=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 200
    answer = reply.json()
    assert (answer["received"], answer["valid"], answer["invalid"], answer["format"]) == (3, 0, 3, "lines")
    assert [r.value for r in raw_topic(project)] == [
        b'{"event_id": "cut short',
        b"not json at all",
        b"\x00\xff\xfe binary",
    ]
    assert [r.key for r in raw_topic(project)] == [None, None, None]


@pytest.mark.parametrize("body", [b"", b"  \n\r\n "])
def test_empty_body_is_400(client: TestClient, project: Project, body: bytes) -> None:
    reply = client.post("/events", content=body, headers=NDJSON)
    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid_input" and "empty" in reply.json()["message"]
    assert raw_topic(project) == []


def small_client(project: Project, **ingest: Any) -> TestClient:
    settings = ServerSettings(ingest=IngestSettings(**ingest))
    return TestClient(create_app(project, settings=settings))


def test_body_over_the_limit_is_413_by_content_length(project: Project) -> None:
    with small_client(project, max_body_bytes=2048) as client:
        reply = client.post("/events", content=json.dumps([event(i) for i in range(20)]))
        assert reply.status_code == 413
        assert reply.json()["error"] == "payload_too_large"
        assert "2,048 bytes" in reply.json()["message"] and "Content-Length" in reply.json()["message"]
        assert client.post("/events", json=[event(1)]).status_code == 200  # under the limit
    assert len(raw_topic(project)) == 1


def test_chunked_body_over_the_limit_is_413(project: Project) -> None:
    line = json.dumps(event(1)).encode() + b"\n"

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield line

    with small_client(project, max_body_bytes=2048) as client:
        reply = client.post("/events", content=chunks(), headers=NDJSON)
        assert reply.status_code == 413
        assert "2,048 bytes" in reply.json()["message"]
    assert raw_topic(project) == []


def test_too_many_events_is_413(project: Project) -> None:
    with small_client(project, max_events=2) as client:
        reply = client.post("/events", json=[event(1), event(2), event(3)])
        assert reply.status_code == 413 and "max_events" in reply.json()["message"]
    assert raw_topic(project) == []


async def _stream(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_a_false_content_length_does_not_get_past_the_limit() -> None:
    parts = (b"x" * 600, b"x" * 600)
    with pytest.raises(PayloadTooLargeError, match="1,000 bytes .* longer than that"):
        asyncio.run(read_limited("10", _stream(*parts), 1000))
    assert asyncio.run(read_limited(None, _stream(b"ab", b"c"), 3)) == b"abc"
    with pytest.raises(InvalidInputError, match="Content-Length"):
        asyncio.run(read_limited("lots", _stream(b"a"), 1000))


@pytest.mark.parametrize(
    ("body", "content_type", "events", "form"),
    [
        (b'[{"a":1},{"b":2}]', "application/json", [b'{"a":1}', b'{"b":2}'], "array"),
        (b"[]", None, [], "array"),
        (b"[1, NaN]", None, [b"1", b"NaN"], "array"),
        (b' {"a":\n 1}\n', "application/json", [b'{"a":\n 1}'], "object"),
        (b'{"a":1}\n{"b":2}', "application/json", [b'{"a":1}', b'{"b":2}'], "lines"),
        (b'[{"a":1}]\n', "application/x-ndjson; charset=utf-8", [b'[{"a":1}]'], "ndjson"),
        (b"[1, 2", None, [b"[1, 2"], "lines"),
    ],
)
def test_split_events(body: bytes, content_type: str | None, events: list[bytes], form: str) -> None:
    assert split_events(body, content_type) == (events, form)


def log_down_project(tmp_path: Path) -> Project:
    root = example_project(tmp_path / "shop", event_log="local").root
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the log's directory should be")
    environ = {"RTML_EVENT_LOG__TYPE": "local", "RTML_EVENT_LOG__PATH": str(blocker / "log.db")}
    return Project.load(root, environ=environ)


def test_event_log_down_is_503_with_retry_after(tmp_path: Path) -> None:
    project = log_down_project(tmp_path)
    with small_client(project, retry_after_s=7) as client:
        for _ in range(2):  # the second is answered from the remembered failure
            reply = client.post("/events", json=[event(1)])
            assert reply.status_code == 503
            assert reply.headers["Retry-After"] == "7"
            assert reply.json()["error"] == "event_log_unavailable"
            assert "event log" in reply.json()["message"] and "Retry in 7 s" in reply.json()["message"]
        assert client.get("/health").status_code == 200  # the process itself is fine


def test_metrics_count_requests_and_events(client: TestClient) -> None:
    client.post("/events", json=[event(1), event(2, price=-1)])
    client.post("/events", content=b"")
    text = client.get("/metrics").text
    assert 'rtml_http_requests_total{method="POST",route="/events",status="200"} 1.0' in text
    assert 'rtml_http_requests_total{method="POST",route="/events",status="400"} 1.0' in text
    assert 'rtml_ingest_events_total{outcome="valid"} 1.0' in text
    assert 'rtml_ingest_events_total{outcome="invalid"} 1.0' in text
    assert "rtml_http_request_duration_seconds_bucket" in text


def test_health_and_errors_are_json(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    bad = client.post("/events?verbose=maybe", json=[event(1)])
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"


def test_openapi_documents_the_endpoint(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    post = doc["paths"]["/events"]["post"]
    content = post["requestBody"]["content"]
    assert set(content) == {"application/json", "application/x-ndjson", "text/plain"}
    event_schema = content["application/json"]["schema"]["oneOf"][1]
    assert "price" in event_schema["properties"] and "$schema" not in event_schema
    example = content["application/json"]["examples"]["object"]["value"]
    assert example["event_type"] == "view" and example["event_time"].endswith("Z")
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("IngestReply")
    assert {"400", "413", "503"} <= set(post["responses"])
    reply_schema = doc["components"]["schemas"]["IngestReply"]
    assert reply_schema["examples"][0]["results"][0]["code"] == "out_of_range"
    assert "/health" in doc["paths"] and "/metrics" in doc["paths"]


def test_example_of_the_openapi_document_is_a_valid_event(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    example = doc["paths"]["/events"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    reply = client.post("/events", json=example["array"]["value"])
    assert reply.json()["invalid"] == 0, reply.json()
