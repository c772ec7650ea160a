"""Raw events -> records of the raw topic, the same way for every producer.

The HTTP ingestion endpoint (``POST /events``) and the Python :class:`~rtml.producer.Producer`
both turn each raw event into a :class:`LogRecord` with :class:`RawRecordEncoder`:

- ``value``: the event's bytes as received, optionally behind a Confluent wire-format
  header (magic byte ``0`` + the 4-byte big-endian schema id);
- ``key``: the source's entity key (see :func:`entity_key_fields`), so that one entity's
  events stay in one partition, in order; no key when the event does not parse;
- ``timestamp_ms``: the event time when it parses, else the produce time;
- header ``("source", <source name>)``.

Nothing here decides whether an event is valid: the validator service does, downstream.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict

from rtml.backends.event_log.base import LogRecord
from rtml.core.validation.timestamps import epoch_ms, parse_event_time
from rtml.definitions.loader import Definitions
from rtml.definitions.source import Source

WireFormat = Literal["auto", "confluent", "json"]
MAGIC_BYTE = b"\x00"
SOURCE_HEADER = "source"


class ProducerSettings(BaseModel):
    """``producer`` in ``rtml.yaml``: how producers frame the raw topic's records.

    ``wire_format``: ``json`` writes the event's JSON bytes as they are; ``confluent``
    prefixes them with the Confluent wire-format header (magic byte 0 + the schema id
    of the source's schema in the registry); ``auto`` (the default) is ``confluent`` when
    the event log is Kafka and ``json`` otherwise. ``auto_register``: register the
    source's schema when the registry does not hold it yet (as Confluent's serializers
    do); off, a missing schema is an error that says to run ``rtml apply``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    wire_format: WireFormat = "auto"
    auto_register: bool = True

    def resolved_format(self, event_log_type: str) -> Literal["confluent", "json"]:
        if self.wire_format == "auto":
            return "confluent" if event_log_type == "kafka" else "json"
        return self.wire_format


def entity_key_fields(definitions: Definitions, source: Source) -> tuple[str, ...]:
    """The fields whose values key ``source``'s records: the join keys of the entity most
    of the source's feature views are keyed by (ties: the entity defined first). A source
    no feature view reads is keyed by the first entity whose join keys are all fields of
    its schema; ``()`` (no key) when there is none.

    For the e-commerce example: ``("user_id",)``.
    """
    entities = list(definitions.entities.values())
    views = [v for v in definitions.feature_views.values() if v.source.name == source.name]
    uses = Counter(entity.name for view in views for entity in view.entities)
    if uses:
        known = {e.name for e in entities}
        for entity in (e for view in views for e in view.entities):  # entities only views name
            if entity.name not in known:
                entities.append(entity)
                known.add(entity.name)
        best = max(uses.values())
        chosen = next(e for e in entities if uses[e.name] == best)
        return tuple(chosen.join_keys)
    schema = definitions.schemas.get(source.name)
    fields = schema.names if schema is not None else frozenset()
    return next((tuple(e.join_keys) for e in entities if set(e.join_keys) <= fields), ())


def _key_part(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value:
        return value
    return None


class RawRecordEncoder:
    """Builds the raw topic's record of one raw event (see the module's docstring)."""

    def __init__(
        self,
        *,
        source: str,
        key_fields: Sequence[str],
        timestamp_field: str,
        schema_id: int | None = None,
    ) -> None:
        if schema_id is not None and not 0 <= schema_id < 1 << 32:
            raise ValueError(f"schema id {schema_id} does not fit the wire format's 4 bytes")
        self.source = source
        self.key_fields = tuple(key_fields)
        self.timestamp_field = timestamp_field
        self.schema_id = schema_id
        self._headers = ((SOURCE_HEADER, source.encode()),)
        self._prefix = MAGIC_BYTE + schema_id.to_bytes(4, "big") if schema_id is not None else b""

    @property
    def wire_format(self) -> Literal["confluent", "json"]:
        return "confluent" if self.schema_id is not None else "json"

    def record(self, raw: bytes, event: Any = None) -> LogRecord:
        """The record of ``raw``. ``event`` is its decoded JSON if the caller has it
        already; otherwise ``raw`` is decoded here (bytes that do not decode, or that are
        not an object, get no key and no event time).

        In the Confluent wire format, bytes that already carry a header are kept as they
        are; every other event gets this encoder's header, so the topic is framed alike.
        """
        if not isinstance(raw, bytes):
            raw = bytes(raw)
        framed = raw[:1] == MAGIC_BYTE
        if event is None:
            event = _decode(raw[5:] if framed else raw)
        key = timestamp = None
        if isinstance(event, dict):
            key = self.key_of(event)
            timestamp = self.timestamp_of(event)
        value = raw if framed or not self._prefix else self._prefix + raw
        return LogRecord(value=value, key=key, headers=self._headers, timestamp_ms=timestamp)

    def key_of(self, event: dict[str, Any]) -> bytes | None:
        if not self.key_fields:
            return None
        parts = [_key_part(event.get(name)) for name in self.key_fields]
        if any(p is None for p in parts):
            return None
        if len(parts) == 1:
            return str(parts[0]).encode()
        return json.dumps(parts, separators=(",", ":"), ensure_ascii=False).encode()

    def timestamp_of(self, event: dict[str, Any]) -> int | None:
        value = event.get(self.timestamp_field)
        if not isinstance(value, str):
            return None
        try:
            ms = epoch_ms(parse_event_time(value))
        except (ValueError, OverflowError):
            return None
        return ms if ms >= 0 else None  # Kafka takes no time before 1970


def _decode(payload: bytes) -> Any:
    try:
        return msgspec.json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
