"""Schema parsing and compatibility checks (Avro and JSON Schema), with no I/O.

The words follow Confluent Schema Registry:

- BACKWARD: the new schema can read data written with the latest previous one;
- FORWARD: the latest previous schema can read data written with the new one;
- FULL: both;
- the ``_TRANSITIVE`` forms check against every previous schema, not just the latest;
- NONE: no check.

"Can read" is Avro's schema resolution for Avro (:mod:`.avro`) and "accepts every
document the other accepts" for JSON Schema (:mod:`.json_schema`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from rtml.errors import InvalidInputError

SchemaType = Literal["AVRO", "JSON"]
SCHEMA_TYPES: tuple[SchemaType, ...] = ("JSON", "AVRO")


class InvalidSchemaError(InvalidInputError):
    """A schema's text does not parse, or is not a valid schema of its type."""

    http_status = 422

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class CompatibilityLevel(StrEnum):
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.value.startswith(("FORWARD", "FULL"))


DEFAULT_LEVEL = CompatibilityLevel.BACKWARD


@dataclass(frozen=True)
class ParsedSchema:
    """A schema checked for validity. ``text`` is its canonical form (compact JSON, the
    author's key order kept; key-sorted when normalized): two texts differing only in
    white space get the same ``text`` and so the same fingerprint and id."""

    schema_type: SchemaType
    text: str
    document: Any = field(compare=False, repr=False)
    # Avro: fastavro's parsed form (full names); JSON Schema: the document itself.
    parsed: Any = field(compare=False, repr=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.schema_type, self.text)


def fingerprint(schema_type: str, text: str) -> str:
    """Identity of a schema across subjects: the same fingerprint gets the same id."""
    return hashlib.sha256(f"{schema_type}\n{text}".encode()).hexdigest()


def parse_schema(schema_type: str, text: str, *, normalize: bool = False) -> ParsedSchema:
    """Parse and check ``text`` as a schema of ``schema_type`` (``AVRO`` or ``JSON``).

    Raises :class:`InvalidSchemaError` with the parser's reason.
    """
    kind = schema_type.upper()
    if kind == "AVRO":
        from rtml.core.compatibility.avro import parse_avro

        return parse_avro(text, normalize=normalize)
    if kind == "JSON":
        from rtml.core.compatibility.json_schema import parse_json_schema

        return parse_json_schema(text, normalize=normalize)
    raise InvalidSchemaError(
        f"unsupported schema type {schema_type!r}; this registry supports {', '.join(SCHEMA_TYPES)}"
    )


def read_problems(reader: ParsedSchema, writer: ParsedSchema) -> list[str]:
    """Why ``reader`` cannot read data written with ``writer`` ([] when it can)."""
    if reader.schema_type != writer.schema_type:
        return [
            f"SCHEMA_TYPE_CHANGED: a {reader.schema_type} schema cannot read "
            f"data written with a {writer.schema_type} schema"
        ]
    if reader.schema_type == "AVRO":
        from rtml.core.compatibility.avro import avro_read_problems

        return avro_read_problems(reader.parsed, writer.parsed)
    from rtml.core.compatibility.json_schema import json_read_problems

    return json_read_problems(reader.parsed, writer.parsed)


def check_compatibility(
    level: CompatibilityLevel | str,
    new: ParsedSchema,
    previous: Sequence[tuple[str, ParsedSchema]],
) -> list[str]:
    """Problems that make ``new`` incompatible under ``level`` ([] when compatible).

    ``previous`` holds ``(label, schema)`` pairs, newest first; the label (e.g.
    ``"version 3"``) names the schema in the messages.
    """
    level = CompatibilityLevel(level)
    if level is CompatibilityLevel.NONE or not previous:
        return []
    targets = previous if level.transitive else previous[:1]
    problems: list[str] = []
    for label, old in targets:
        if level.backward:
            problems += [
                f"the new schema cannot read data written with {label}: {p}" for p in read_problems(new, old)
            ]
        if level.forward:
            problems += [
                f"{label} cannot read data written with the new schema: {p}" for p in read_problems(old, new)
            ]
    return problems


__all__ = [
    "DEFAULT_LEVEL",
    "SCHEMA_TYPES",
    "CompatibilityLevel",
    "InvalidSchemaError",
    "ParsedSchema",
    "SchemaType",
    "check_compatibility",
    "fingerprint",
    "parse_schema",
    "read_problems",
]
