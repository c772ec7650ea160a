"""An Avro record schema as the equivalent JSON Schema, for sources whose events are
JSON documents described by an ``.avsc`` file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rtml.errors import DefinitionError

_PRIMITIVES: dict[str, dict[str, Any]] = {
    "null": {"type": "null"},
    "boolean": {"type": "boolean"},
    "int": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    "long": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "string": {"type": "string"},
}


def avro_to_json_schema(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` (``{"type": "record", "fields": [...]}``) as an object JSON Schema:
    fields without a ``default`` are required, unknown fields are refused."""
    fields = record.get("fields")
    if record.get("type") != "record" or not isinstance(fields, list):
        raise _unsupported(record, "expected a record with a list of fields")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in fields:
        if not isinstance(field, Mapping) or not isinstance(field.get("name"), str):
            raise _unsupported(field, "each field needs a name and a type")
        properties[field["name"]] = _convert(field.get("type"))
        if "default" not in field:
            required.append(field["name"])
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _convert(avro: Any) -> dict[str, Any]:
    if isinstance(avro, str):
        if avro in _PRIMITIVES:
            return dict(_PRIMITIVES[avro])
        raise _unsupported(avro, "named type references are not supported")
    if isinstance(avro, list):
        branches = [_convert(b) for b in avro]
        types = [b["type"] for b in branches]
        if len(branches) == 2 and "null" in types:
            merged = next(b for b in branches if b["type"] != "null")
            if isinstance(merged["type"], str) and "enum" not in merged:
                return {**merged, "type": [merged["type"], "null"]}
        raise _unsupported(avro, "only unions of null and one primitive type are supported")
    if isinstance(avro, Mapping):
        kind = avro.get("type")
        if kind == "enum":
            return {"type": "string", "enum": list(avro.get("symbols", []))}
        if kind == "array":
            return {"type": "array", "items": _convert(avro.get("items"))}
        if kind == "record":
            return avro_to_json_schema(avro)
        if avro.get("logicalType") in ("timestamp-millis", "timestamp-micros"):
            raise _unsupported(avro, "timestamps must be strings (ISO-8601) in JSON events")
        if isinstance(kind, str) and kind in _PRIMITIVES:
            return dict(_PRIMITIVES[kind])
    raise _unsupported(avro, "this Avro type is not supported")


def _unsupported(what: Any, why: str) -> DefinitionError:
    return DefinitionError(
        f"Avro schema part {str(what)[:80]!r}: {why}",
        fix="describe the event with a JSON Schema (.json), or simplify the Avro schema",
    )
