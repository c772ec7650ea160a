"""``Producer``: send events from a Python application to a project's raw topic.

    from rtml import Producer

    with Producer("path/to/project") as producer:
        producer.send({"event_id": "e-1", "event_time": "2019-10-01T00:00:00Z", ...})
    # leaving the block flushes: the events are durable in the event log

Records are built by :class:`~rtml.raw_records.RawRecordEncoder`, exactly as
``POST /events`` builds them: keyed by the source's entity key, stamped with the event
time, and in the Confluent wire format when ``producer.wire_format`` resolves to
``confluent`` (see docs/ingestion.md). The producer does not validate: the validator
service downstream decides, once, what each event is.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from rtml.backends.event_log.base import EventLog, LogRecord
from rtml.backends.schema_store import ExternalSchemaRegistryConfig, open_schema_store
from rtml.definitions.source import Source
from rtml.errors import BackendUnavailableError, ConfigError, InvalidInputError, RtmlError
from rtml.project import RAW_EVENTS, Project
from rtml.raw_records import RawRecordEncoder, entity_key_fields

_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def raw_encoder(project: Project) -> RawRecordEncoder:
    """The encoder of ``project``'s raw topic: the validator's source (``validator.source``
    or the only one), its entity key, and its registered schema id when the wire format
    resolves to ``confluent``."""
    from rtml.services.validator.factory import project_source  # the source the validator reads

    source = project_source(project, project.config.validator)
    settings = project.config.producer
    wire = settings.resolved_format(project.config.event_log.type)
    schema_id = (
        source_schema_id(project, source, auto_register=settings.auto_register)
        if wire == "confluent"
        else None
    )
    return RawRecordEncoder(
        source=source.name,
        key_fields=entity_key_fields(project.definitions, source),
        timestamp_field=source.timestamp_field,
        schema_id=schema_id,
    )


def source_schema_id(project: Project, source: Source, *, auto_register: bool) -> int:
    """The registry id of ``source``'s schema under ``<project>.events.raw-value``, in the
    configured registry (rtml's own, on its store; or an external one by URL). Registers
    it first if it is missing and ``auto_register``."""
    from rtml.services.registry import errors
    from rtml.services.registry.client import RegistryRequestError, register_project_schemas, value_subject
    from rtml.services.registry.registry import SchemaRegistry

    subject = value_subject(project)
    schema = project.definitions.schemas[source.name]
    schema_type = "AVRO" if schema.format == "avro" else "JSON"
    text = json.dumps(schema.document)  # as register_project_schemas sends it
    config = project.config.schema_registry
    try:
        if isinstance(config, ExternalSchemaRegistryConfig):
            where = config.registry_url
            found = _lookup_over_http(where, subject, schema_type, text)
            if found is None and auto_register:
                found = register_project_schemas(project, where)[source.name]
        else:
            where = f"rtml's {config.type} registry"
            store = open_schema_store(config, base_dir=project.root)
            try:
                registry = SchemaRegistry(store)
                try:
                    found = registry.lookup(subject, schema_type, text).schema.id
                except (errors.SubjectNotFound, errors.SchemaNotFound):
                    found = None
                if found is None and auto_register:
                    found = register_project_schemas(project, registry)[source.name]
            finally:
                store.close()
    except (RegistryRequestError, errors.RegistryError) as exc:
        raise ConfigError(
            f"cannot get the schema id of source {source.name!r} under {subject!r}: {exc}. "
            "Fix: make the schema compatible with the subject's versions, or set "
            "producer.wire_format: json"
        ) from exc
    if found is None:
        raise ConfigError(
            f"the schema of source {source.name!r} is not registered under {subject!r} in {where}. "
            "Fix: run `rtml apply`, or set producer.auto_register: true"
        )
    return found


def _lookup_over_http(url: str, subject: str, schema_type: str, text: str) -> int | None:
    from rtml.services.registry.client import RegistryRequestError

    endpoint = f"{url}/subjects/{quote(subject, safe='')}"
    body = {"schema": text, "schemaType": schema_type}
    headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    try:
        response = httpx.post(endpoint, json=body, headers=headers, timeout=_TIMEOUT)
    except httpx.TransportError as exc:
        raise BackendUnavailableError(
            f"the schema registry at {url} cannot be reached ({exc}). Fix: start it, or "
            "correct schema_registry.url in rtml.yaml"
        ) from exc
    if response.status_code == 404:
        return None
    try:
        answer = response.json()
        return int(answer["id"])
    except (ValueError, KeyError, TypeError):
        raise RegistryRequestError(response.status_code, -1, response.text[:200]) from None


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInputError(
                f"the datetime {value.isoformat()} has no timezone. Fix: use an aware datetime "
                "(e.g. datetime.now(UTC)) or an ISO-8601 string with a zone"
            )
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise InvalidInputError(f"a value of type {type(value).__name__} cannot be sent as JSON: {value!r}")


class Producer:
    """Writes events to the raw topic (``<project>.events.raw``) of a project's event log.

    ``project`` is a project directory or a loaded :class:`~rtml.project.Project`.
    Records are handed to the log in batches of ``batch_size``; :meth:`flush` (or leaving
    the ``with`` block) sends the rest and waits until every record is durable.
    Thread-safe.
    """

    def __init__(
        self,
        project: str | Path | Project = ".",
        *,
        batch_size: int = 1000,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
        self.project = project if isinstance(project, Project) else Project.load(project, environ)
        self.topic = self.project.topic(RAW_EVENTS)
        self.batch_size = batch_size
        self.sent = 0  # records handed to the log
        self._batch: list[LogRecord] = []
        self._lock = threading.Lock()
        self._log: EventLog | None = self.project.event_log()
        try:
            self._log.create_topic(self.topic)
            self.encoder = raw_encoder(self.project)
        except BaseException:
            self._log.close()
            raise

    @property
    def wire_format(self) -> str:
        """``confluent`` or ``json``: how this producer frames its records."""
        return self.encoder.wire_format

    def send(self, event: Mapping[str, Any]) -> None:
        """Send one event (a JSON object; aware datetimes become ISO-8601 strings)."""
        if not isinstance(event, Mapping):
            raise InvalidInputError(f"an event is a mapping of fields, got {type(event).__name__}")
        try:
            raw = json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=_json_value)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"the event cannot be written as JSON: {exc}") from exc
        self._add(self.encoder.record(raw.encode()))

    def send_raw(self, raw: bytes) -> None:
        """Send one event's bytes as they are (JSON, or already in the wire format)."""
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise InvalidInputError(f"send_raw takes bytes, got {type(raw).__name__}")
        self._add(self.encoder.record(bytes(raw)))

    def flush(self, timeout: float = 30.0) -> None:
        """Send what is batched and wait until every record sent is durable."""
        with self._lock:
            log = self._open_log()
            self._send_batch(log)
            log.flush(timeout)

    def close(self) -> None:
        """Flush, then close the log. Closing twice is harmless."""
        if self._log is None:
            return
        try:
            self.flush()
        finally:
            self._close_log()

    def _add(self, record: LogRecord) -> None:
        with self._lock:
            log = self._open_log()
            self._batch.append(record)
            if len(self._batch) >= self.batch_size:
                self._send_batch(log)

    def _send_batch(self, log: EventLog) -> None:
        if self._batch:
            log.produce(self.topic, self._batch)
            self.sent += len(self._batch)
            self._batch = []

    def _open_log(self) -> EventLog:
        if self._log is None:
            raise RtmlError("this Producer is closed. Fix: make a new one")
        return self._log

    def _close_log(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:  # leave the exception as it is; records not yet flushed may be lost
            self._close_log()
