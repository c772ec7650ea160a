"""``Source``: a stream of events with a registered schema."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

from rtml.definitions.base import Definition, as_tuple, check_name, duration_field
from rtml.definitions.sql import SqlExpression, parse_expression


@dataclasses.dataclass(frozen=True, kw_only=True)
class Source(Definition):
    """Events of one kind, e.g. the e-commerce clickstream.

    ``schema`` is a path, relative to the project directory, to a JSON Schema
    (``.json``) or an Avro schema (``.avsc``). ``rules`` are SQL expressions every
    valid event must satisfy (``"price >= 0"``). ``allowed_lateness`` is how far behind
    the watermark an event may arrive and still update online features.
    """

    kind: ClassVar[str] = "Source"

    schema: str
    timestamp_field: str = "event_time"
    id_field: str = "event_id"
    rules: Sequence[str] = ()
    allowed_lateness: str = "5m"

    def _validate(self) -> None:
        if not isinstance(self.schema, str) or not self.schema.endswith((".json", ".avsc")):
            raise self.fail(
                "schema",
                f"{self.schema!r} is not a schema file name",
                "give a path ending in .json (JSON Schema) or .avsc (Avro)",
            )
        check_name(self.timestamp_field, field="timestamp_field", obj=self.title)
        check_name(self.id_field, field="id_field", obj=self.title)
        object.__setattr__(self, "rules", as_tuple(self.rules))
        for rule in self.rules:
            parse_expression(rule, obj=self.title, field="rules")
        duration_field(self, "allowed_lateness", self.allowed_lateness)

    @property
    def rule_expressions(self) -> tuple[SqlExpression, ...]:
        return tuple(parse_expression(r, obj=self.title, field="rules") for r in self.rules)
