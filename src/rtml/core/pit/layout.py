"""The offline events table of a source: its name and typed columns, per SQL dialect.

One table per source, ``events_<source>``: ``event_id`` (appending the same event twice
keeps one row), ``ts_ms`` (event time, ms since the epoch, UTC) and every column of the
source's schema, typed from it. The source's own id and timestamp
fields are among the schema's columns as well (``event_time`` as a ``TIMESTAMPTZ``);
the point-in-time SQL only ever reads ``ts_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtml.definitions.schema import ColumnKind, SourceSchema
from rtml.definitions.source import Source
from rtml.errors import DefinitionError

EVENT_ID = "event_id"
TS_MS = "ts_ms"
RESERVED = frozenset({EVENT_ID, TS_MS})
DIALECTS = ("duckdb", "postgres")

_TYPES: dict[str, dict[ColumnKind, str]] = {
    "duckdb": {
        "string": "VARCHAR",
        "integer": "BIGINT",
        "number": "DOUBLE",
        "boolean": "BOOLEAN",
        "timestamp": "TIMESTAMPTZ",
        "other": "VARCHAR",  # nested values, as JSON text
    },
    "postgres": {
        "string": "TEXT",
        "integer": "BIGINT",
        "number": "DOUBLE PRECISION",
        "boolean": "BOOLEAN",
        "timestamp": "TIMESTAMPTZ",
        "other": "TEXT",
    },
}


def table_name(source: str) -> str:
    """``events_<source>``: source names are lower-case identifiers already."""
    return f"events_{source}"


def check_dialect(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
    return dialect


@dataclass(frozen=True)
class TableColumn:
    name: str
    kind: ColumnKind


@dataclass(frozen=True)
class EventTable:
    """The layout of one source's events table."""

    source: str
    id_field: str
    timestamp_field: str
    columns: tuple[TableColumn, ...]  # the schema's columns, in schema order, without event_id

    @classmethod
    def of(cls, source: Source, schema: SourceSchema) -> EventTable:
        columns: list[TableColumn] = []
        for column in schema.columns:
            if column.name == EVENT_ID:
                if source.id_field != EVENT_ID:
                    raise DefinitionError(
                        f"the schema has a column {EVENT_ID!r} but the source's id is {source.id_field!r}",
                        obj=source.title,
                        field="id_field",
                        fix=f"set id_field={EVENT_ID!r}, or rename the schema's column {EVENT_ID!r}",
                    )
                continue
            if column.name == TS_MS:
                raise DefinitionError(
                    f"the schema has a column {TS_MS!r}, which the offline store uses for event time",
                    obj=source.title,
                    field="schema",
                    fix=f"rename the column {TS_MS!r} in the schema",
                )
            columns.append(TableColumn(column.name, column.kind))
        return cls(
            source=source.name,
            id_field=source.id_field,
            timestamp_field=source.timestamp_field,
            columns=tuple(columns),
        )

    @property
    def name(self) -> str:
        return table_name(self.source)

    @property
    def column_names(self) -> tuple[str, ...]:
        return (EVENT_ID, TS_MS, *(c.name for c in self.columns))

    def kind(self, column: str) -> ColumnKind | None:
        if column == EVENT_ID:
            return "string"
        if column == TS_MS:
            return "integer"
        return next((c.kind for c in self.columns if c.name == column), None)

    def sql_type(self, column: str, dialect: str) -> str:
        kind = self.kind(column)
        if kind is None:
            raise KeyError(column)
        return _TYPES[check_dialect(dialect)][kind]

    def ddl(self, dialect: str, qualified_name: str | None = None, *, primary_key: bool = True) -> str:
        """``CREATE TABLE IF NOT EXISTS`` of this table in ``dialect`` (``event_id`` the
        primary key unless ``primary_key`` is False)."""
        key = "PRIMARY KEY" if primary_key else "NOT NULL"
        lines = [
            f"{EVENT_ID} {_TYPES[check_dialect(dialect)]['string']} {key}",
            f"{TS_MS} BIGINT NOT NULL",
        ]
        lines += [f'"{c.name}" {_TYPES[dialect][c.kind]}' for c in self.columns]
        body = ",\n  ".join(lines)
        return f"CREATE TABLE IF NOT EXISTS {qualified_name or self.name} (\n  {body}\n)"
