"""Column view of a source's schema (JSON Schema or Avro), for checking definitions.

Only the shape matters here — column names, a coarse type and nullability. Full
validation of events against the schema belongs to the validator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ColumnKind = Literal["string", "integer", "number", "boolean", "timestamp", "other"]
NUMERIC: frozenset[str] = frozenset({"integer", "number"})

_JSON_KINDS: dict[str, ColumnKind] = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
}
_AVRO_KINDS: dict[str, ColumnKind] = {
    "string": "string",
    "int": "integer",
    "long": "integer",
    "float": "number",
    "double": "number",
    "boolean": "boolean",
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind
    nullable: bool


@dataclass(frozen=True)
class SourceSchema:
    """The columns of a source, in schema order."""

    format: Literal["json", "avro"]
    columns: tuple[Column, ...]
    document: dict[str, Any]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def from_json_schema(document: dict[str, Any]) -> SourceSchema:
    """Columns of an object JSON Schema (``properties``; ``format: date-time`` -> timestamp)."""
    if document.get("type") != "object" or not isinstance(document.get("properties"), dict):
        raise ValueError("a source's JSON Schema must be an object schema with 'properties'")
    columns = []
    for name, prop in document["properties"].items():
        types = prop.get("type", "string")
        types = [types] if isinstance(types, str) else list(types)
        nullable = "null" in types
        non_null = [t for t in types if t != "null"]
        kind: ColumnKind = _JSON_KINDS.get(non_null[0], "other") if non_null else "other"
        if kind == "string" and prop.get("format") == "date-time":
            kind = "timestamp"
        columns.append(Column(name=name, kind=kind, nullable=nullable))
    return SourceSchema(format="json", columns=tuple(columns), document=document)


def from_avro_schema(document: dict[str, Any]) -> SourceSchema:
    """Columns of an Avro record schema (unions with ``null`` are nullable)."""
    if document.get("type") != "record" or not isinstance(document.get("fields"), list):
        raise ValueError("a source's Avro schema must be a record with 'fields'")
    columns = []
    for field in document["fields"]:
        avro_type = field["type"]
        branches = avro_type if isinstance(avro_type, list) else [avro_type]
        nullable = "null" in branches
        non_null = [b for b in branches if b != "null"]
        branch = non_null[0] if non_null else "null"
        kind: ColumnKind = "other"
        if isinstance(branch, str):
            kind = _AVRO_KINDS.get(branch, "other")
        elif isinstance(branch, dict):
            if str(branch.get("logicalType", "")).startswith("timestamp"):
                kind = "timestamp"
            else:
                kind = _AVRO_KINDS.get(str(branch.get("type")), "other")
        columns.append(Column(name=field["name"], kind=kind, nullable=nullable))
    return SourceSchema(format="avro", columns=tuple(columns), document=document)
