"""``POST /events``: ingestion over HTTP for producers that cannot speak Kafka.

Every event of the body goes to the raw topic as it was sent (the validator service
routes it; nothing is dropped here, nothing is decided twice). The answer counts the
events by what the same pure :class:`~rtml.core.validation.Validator` says of each, and
lists the invalid ones (all of them with ``?verbose=true``). The events are durable in
the event log when the answer is 200. See docs/ingestion.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from rtml.core.validation import Invalid, Validator
from rtml.services.server.errors import ErrorBody, PayloadTooLargeError
from rtml.services.server.ingest_body import BodyFormat, read_limited, split_events
from rtml.services.server.observability import ServerMetrics
from rtml.services.server.raw_sink import RawEventSink
from rtml.services.server.settings import IngestSettings


class EventResult(BaseModel):
    """What the validator says of one event of the body."""

    index: int = Field(description="Position of the event in the body (0-based; blank NDJSON lines skipped).")
    ok: bool
    event_id: str | None = Field(default=None, description="The event's id, when valid.")
    code: str | None = Field(
        default=None, description="Why it is invalid: a stable code (docs/validation.md)."
    )
    message: str | None = Field(default=None, description="What is wrong, naming the field.")
    field: str | None = Field(default=None, description="JSON path of the field at fault, e.g. `$.price`.")


class IngestReply(BaseModel):
    """Counts of the events received; every one of them is in the raw topic."""

    received: int = Field(description="Events read from the body and written to the raw topic.")
    valid: int = Field(description="Events the validator accepts (duplicates are dropped later, downstream).")
    invalid: int = Field(description="Events the validator refuses; they go to the dead letters.")
    format: BodyFormat = Field(
        description="How the body was read: `array`, `object`, `ndjson`, "
        "or `lines` (not JSON: one event per line)."
    )
    topic: str = Field(description="The raw topic the events were written to.")
    results: list[EventResult] = Field(description="The invalid events, or every event with `?verbose=true`.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "received": 3,
                    "valid": 2,
                    "invalid": 1,
                    "format": "array",
                    "topic": "ecommerce.events.raw",
                    "results": [
                        {
                            "index": 2,
                            "ok": False,
                            "code": "out_of_range",
                            "message": "$.price: -3.5 is less than the minimum 0",
                            "field": "$.price",
                        }
                    ],
                }
            ]
        }
    }


@dataclass
class Ingestion:
    """What ``POST /events`` needs: the validator for the answer, the sink for the events."""

    validator: Validator
    sink: RawEventSink
    settings: IngestSettings
    metrics: ServerMetrics

    def accept(self, raws: list[bytes], form: BodyFormat, body_bytes: int, *, verbose: bool) -> IngestReply:
        """Validate (for the answer), write and flush (blocking: run it in a thread)."""
        if len(raws) > self.settings.max_events:
            raise PayloadTooLargeError(
                f"the body holds {len(raws):,} events; the limit is {self.settings.max_events:,} "
                "(server.ingest.max_events). Fix: send them in smaller batches"
            )
        outcomes = self.validator.validate_many(raws)
        self.sink.write(raws)
        results = []
        invalid = 0
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, Invalid):
                invalid += 1
                results.append(
                    EventResult(
                        index=index,
                        ok=False,
                        code=outcome.code,
                        message=outcome.message,
                        field=outcome.field_path,
                    )
                )
            elif verbose:
                results.append(EventResult(index=index, ok=True, event_id=outcome.event_id))
        valid = len(raws) - invalid
        self.metrics.events.labels("valid").inc(valid)
        self.metrics.events.labels("invalid").inc(invalid)
        self.metrics.ingest_bytes.inc(body_bytes)
        return IngestReply(
            received=len(raws),
            valid=valid,
            invalid=invalid,
            format=form,
            topic=self.sink.topic,
            results=results,
        )


def build_router(event_schema: dict[str, Any]) -> APIRouter:
    """The ingestion router; ``event_schema`` (the source's JSON Schema) documents the body."""
    router = APIRouter(tags=["ingestion"])
    example = example_event(event_schema)

    @router.post(
        "/events",
        response_model=IngestReply,
        summary="Ingest events (JSON array, NDJSON, or one object)",
        responses={
            400: {"model": ErrorBody, "description": "Empty body"},
            413: {"model": ErrorBody, "description": "Body over server.ingest.max_body_bytes or max_events"},
            422: {"model": ErrorBody, "description": "A query parameter is not valid"},
            503: {
                "model": ErrorBody,
                "description": "The event log cannot take events now; retry after `Retry-After` seconds",
            },
        },
        openapi_extra={"requestBody": request_body_doc(event_schema, example)},
    )
    async def ingest(
        request: Request,
        verbose: bool = Query(False, description="List every event in `results`, valid ones too."),
    ) -> IngestReply:
        """Write every event of the body to the raw topic, durably, and count them by
        validity. Invalid events are written too: the validator service routes them
        to the dead letters with their reason."""
        ingestion: Ingestion = request.app.state.ingestion
        body = await read_limited(
            request.headers.get("content-length"), request.stream(), ingestion.settings.max_body_bytes
        )
        raws, form = split_events(body, request.headers.get("content-type"))
        return await run_in_threadpool(ingestion.accept, raws, form, len(body), verbose=verbose)

    return router


def request_body_doc(event_schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of ``POST /events`` (read by hand, so described by hand)."""
    line = json.dumps(example, separators=(",", ":"))
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [{"type": "array", "items": event_schema}, event_schema]},
                "examples": {
                    "array": {"summary": "A JSON array of events", "value": [example, example]},
                    "object": {"summary": "One event", "value": example},
                },
            },
            "application/x-ndjson": {
                "schema": {"type": "string", "pattern": r"\S", "description": "One JSON event per line"},
                "example": f"{line}\n{line}\n",
            },
            "text/plain": {
                "schema": {
                    "type": "string",
                    "pattern": r"\S",
                    "description": "Anything else: one event per line, each validated (an invalid "
                    "line is still written and ends in the dead letters with its reason)",
                },
            },
        },
    }


def example_event(schema: dict[str, Any]) -> dict[str, Any]:
    """An event that fits ``schema``'s properties (for the OpenAPI document)."""
    out: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        if "examples" in prop and prop["examples"]:
            out[name] = prop["examples"][0]
        elif "enum" in prop and prop["enum"]:
            out[name] = prop["enum"][0]
        else:
            types = prop.get("type", "string")
            kind = next((t for t in types if t != "null"), "null") if isinstance(types, list) else types
            if kind == "string" and prop.get("format") == "date-time":
                out[name] = "2019-10-01T00:00:34Z"
            else:
                minimum = prop.get("minimum", 0)
                samples = {
                    "integer": max(int(minimum), 1),
                    "number": max(float(minimum), 1.5),
                    "boolean": True,
                }
                out[name] = samples.get(kind, f"{name}-1" if kind == "string" else None)
    return out


def openapi_event_schema(document: dict[str, Any]) -> dict[str, Any]:
    """The source's JSON Schema without the keywords OpenAPI 3.1 objects to inline."""
    if document.get("type") == "record":  # an Avro source: the body is JSON all the same
        return {"type": "object", "description": f"An event of the Avro record {document.get('name')}"}
    return {k: v for k, v in document.items() if k not in {"$schema", "$id"}}
