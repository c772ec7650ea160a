"""Registering a project's source schemas (what ``rtml apply`` does with a registry).

Works with any Confluent-compatible registry: rtml's own, Confluent's or Karapace.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from rtml.errors import BackendUnavailableError, MissingExtraError, RtmlError
from rtml.services.registry.registry import SchemaRegistry

if TYPE_CHECKING:
    from rtml.project import Project

RAW_EVENTS = "events.raw"  # as rtml.project.RAW_EVENTS (not imported: no cycle)
_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class RegistryRequestError(RtmlError):
    """A registry refused a request; carries its status and Confluent error code."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        self.http_status = status
        self.error_code = error_code
        super().__init__(f"schema registry answered {status} (error {error_code}): {message}")


def value_subject(project: Project) -> str:
    """The subject of the raw topic's values (TopicNameStrategy): ``<project>.events.raw-value``."""
    return f"{project.topic(RAW_EVENTS)}-value"


def register_project_schemas(project: Project, client_or_url: Any) -> dict[str, int]:
    """Register each source's schema under the raw topic's value subject; return the
    schema id of each source by name.

    ``client_or_url`` is a registry URL (``http://127.0.0.1:8081``), a
    ``confluent_kafka.schema_registry.SchemaRegistryClient``, or rtml's own
    :class:`SchemaRegistry` on its store (what ``rtml apply`` uses: no server needed). All sources share the
    raw topic, so several sources' schemas become versions of one subject and must
    be compatible under its level. A refused schema raises :class:`RegistryRequestError`
    (409 for an incompatible one).
    """
    subject = value_subject(project)
    defs = project.definitions
    ids: dict[str, int] = {}
    for name in sorted(defs.sources):
        schema = defs.schemas[name]
        schema_type = "AVRO" if schema.format == "avro" else "JSON"
        text = json.dumps(schema.document)
        if isinstance(client_or_url, SchemaRegistry):  # rtml's own, on its store
            ids[name] = client_or_url.register(subject, schema_type, text).schema.id
        elif isinstance(client_or_url, str):
            ids[name] = _register_over_http(client_or_url, subject, schema_type, text)
        else:
            ids[name] = _register_with_client(client_or_url, subject, schema_type, text)
    return ids


def _register_over_http(url: str, subject: str, schema_type: str, text: str) -> int:
    endpoint = f"{url.rstrip('/')}/subjects/{quote(subject, safe='')}/versions"
    body = {"schema": text, "schemaType": schema_type}
    headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    try:
        response = httpx.post(endpoint, json=body, headers=headers, timeout=_TIMEOUT)
    except httpx.TransportError as exc:
        raise BackendUnavailableError(
            f"the schema registry at {url} cannot be reached ({exc}). Fix: start it "
            "(`rtml run registry`) or correct schema_registry in rtml.yaml"
        ) from exc
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code != 200 or not isinstance(answer, dict) or "id" not in answer:
        raise RegistryRequestError(
            response.status_code,
            int(answer.get("error_code", -1)) if isinstance(answer, dict) else -1,
            str(
                answer.get("message", response.text[:200])
                if isinstance(answer, dict)
                else response.text[:200]
            ),
        )
    return int(answer["id"])


def _register_with_client(client: Any, subject: str, schema_type: str, text: str) -> int:
    try:
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.error import SchemaRegistryError
    except ModuleNotFoundError as exc:
        raise MissingExtraError("schema registry client", "kafka", exc.name or "confluent_kafka") from exc

    try:
        return int(client.register_schema(subject, Schema(text, schema_type)))
    except SchemaRegistryError as exc:
        raise RegistryRequestError(exc.http_status_code, exc.error_code, exc.error_message) from exc
