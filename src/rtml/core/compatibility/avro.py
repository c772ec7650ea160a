"""Avro: parsing (fastavro) and the schema-resolution rules of the Avro specification.

A reader schema can read data written with a writer schema when, recursively:

- both are the same primitive, or the writer's type promotes to the reader's:
  int -> long, float, double; long -> float, double; float -> double; string <-> bytes;
- a writer union: the reader can read every branch of it;
- a reader union (writer not a union): some branch of it can read the writer;
- records: the names match (unqualified name, or a reader alias); each reader field is
  read from the writer field of the same name (or of one of its aliases), and a reader
  field missing from the writer has a default;
- enums: the names match, and every writer symbol is a reader symbol (unless the reader
  enum has a ``default``);
- arrays (items) and maps (values) recursively; fixed: names and sizes match.

Logical types are read as their underlying type, as Avro's own checker does.
"""

from __future__ import annotations

import json
from typing import Any

import fastavro

from rtml.core.compatibility import InvalidSchemaError, ParsedSchema

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
# (writer, reader) pairs the Avro specification promotes.
PROMOTIONS = frozenset(
    {
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    }
)


def parse_avro(text: str, *, normalize: bool = False) -> ParsedSchema:
    """Parse an Avro schema; :class:`InvalidSchemaError` carries fastavro's reason."""
    try:
        document = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise InvalidSchemaError(f"Invalid schema: not valid JSON ({exc})") from None
    try:
        parsed = fastavro.parse_schema(document, _write_hint=False, _force=True)
    except Exception as exc:  # fastavro raises SchemaParseException, UnknownType, ValueError, ...
        raise InvalidSchemaError(f"Invalid Avro schema: {type(exc).__name__}: {exc}") from None
    bare = _record_without_fields(document)
    if bare is not None:
        raise InvalidSchemaError(f"Invalid Avro schema: record {bare!r} has no 'fields' list")
    canonical = json.dumps(
        document, separators=(",", ":"), ensure_ascii=False, sort_keys=normalize, allow_nan=False
    )
    return ParsedSchema(schema_type="AVRO", text=canonical, document=document, parsed=parsed)


def avro_read_problems(reader: Any, writer: Any) -> list[str]:
    """Why ``reader`` (fastavro-parsed) cannot read data written with ``writer``."""
    return _Resolution(_named_types(reader), _named_types(writer)).compare(reader, writer, "")


def _record_without_fields(node: Any) -> str | None:
    """The name of a record declared without ``fields`` (fastavro lets it pass)."""
    if isinstance(node, list):
        return next((n for n in map(_record_without_fields, node) if n is not None), None)
    if not isinstance(node, dict):
        return None
    if node.get("type") in {"record", "error"}:
        if not isinstance(node.get("fields"), list):
            return str(node.get("name", "?"))
        return _record_without_fields([f.get("type") for f in node["fields"] if isinstance(f, dict)])
    return _record_without_fields([node.get("type"), node.get("items"), node.get("values")])


def _named_types(schema: Any) -> dict[str, dict[str, Any]]:
    """Every record, enum and fixed of a parsed schema, by full name."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in NAMED and isinstance(node.get("name"), str):
                if node["name"] in found:
                    return
                found[node["name"]] = node
                for f in node.get("fields") or []:
                    walk(f.get("type"))
            elif kind == "array":
                walk(node.get("items"))
            elif kind == "map":
                walk(node.get("values"))
            elif isinstance(kind, dict | list):
                walk(kind)

    walk(schema)
    return found


class _Resolution:
    """One reader/writer comparison. Recursive types are handled co-inductively: a
    pair already being compared higher up is assumed readable."""

    def __init__(self, reader_names: dict[str, Any], writer_names: dict[str, Any]) -> None:
        self._names = (reader_names, writer_names)
        self._in_progress: set[tuple[int, int]] = set()

    def compare(self, reader: Any, writer: Any, path: str) -> list[str]:
        r = self._resolve(reader, self._names[0])
        w = self._resolve(writer, self._names[1])
        key = (id(r), id(w))
        if key in self._in_progress:
            return []
        self._in_progress.add(key)
        try:
            return self._compare(r, w, path)
        finally:
            self._in_progress.discard(key)

    def _compare(self, r: Any, w: Any, path: str) -> list[str]:
        rk, wk = _kind(r), _kind(w)
        if wk == "union":
            problems: list[str] = []
            for i, branch in enumerate(w):
                problems += self.compare(r, branch, f"{path}/{i}" if rk != "union" else path)
            return problems
        if rk == "union":
            return self._read_with_union(r, w, path)
        if rk != wk:
            if (wk, rk) in PROMOTIONS:
                return []
            return [
                f"TYPE_MISMATCH at {path or '/'}: the reader's type {_describe(r)} "
                f"cannot read the writer's {_describe(w)}"
            ]
        if rk in PRIMITIVES:
            return []
        if rk in {"record", "error"}:
            return self._records(r, w, path)
        if rk == "enum":
            return self._enums(r, w, path)
        if rk == "fixed":
            problems = _name_problems(r, w, path)
            if r.get("size") != w.get("size"):
                problems.append(
                    f"FIXED_SIZE_MISMATCH at {path or '/'}/size: expected {w.get('size')}, "
                    f"found {r.get('size')}"
                )
            return problems
        if rk == "array":
            return self.compare(r.get("items"), w.get("items"), f"{path}/items")
        if rk == "map":
            return self.compare(r.get("values"), w.get("values"), f"{path}/values")
        return [f"TYPE_MISMATCH at {path or '/'}: unknown Avro type {rk!r}"]

    def _read_with_union(self, r: list[Any], w: Any, path: str) -> list[str]:
        attempts = [self.compare(branch, w, f"{path}/{i}") for i, branch in enumerate(r)]
        if any(not a for a in attempts):
            return []
        # A branch of the writer's own kind (and name) explains the failure best.
        close = [
            a
            for branch, a in zip(r, attempts, strict=True)
            if _kind(self._resolve(branch, self._names[0])) == _kind(w)
        ]
        if len(close) == 1:
            return close[0]
        return [
            f"MISSING_UNION_BRANCH at {path or '/'}: the reader's union has no branch "
            f"that can read the writer's {_describe(w)}"
        ]

    def _records(self, r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
        problems = _name_problems(r, w, path)
        writer_fields = {f["name"]: f for f in w.get("fields", [])}
        for i, field in enumerate(r.get("fields", [])):
            names = [field["name"], *field.get("aliases", [])]
            source = next((writer_fields[n] for n in names if n in writer_fields), None)
            where = f"{path}/fields/{i}"
            if source is not None:
                problems += self.compare(field["type"], source["type"], f"{where}/type")
            elif "default" not in field:
                problems.append(
                    f"READER_FIELD_MISSING_DEFAULT_VALUE at {where}: the field {field['name']!r} "
                    "has no default value and is missing from the writer's schema"
                )
        return problems

    def _enums(self, r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
        problems = _name_problems(r, w, path)
        missing = [s for s in w.get("symbols", []) if s not in set(r.get("symbols", []))]
        if missing and "default" not in r:
            problems.append(
                f"MISSING_ENUM_SYMBOLS at {path or '/'}/symbols: the reader's enum lacks "
                f"{missing} (add them, or give the enum a default symbol)"
            )
        return problems

    @staticmethod
    def _resolve(schema: Any, names: dict[str, Any]) -> Any:
        """A named reference or a ``{"type": ...}`` wrapper, replaced by what it names."""
        for _ in range(64):
            if isinstance(schema, str) and schema not in PRIMITIVES and schema in names:
                schema = names[schema]
            elif isinstance(schema, dict) and isinstance(schema.get("type"), dict | list):
                schema = schema["type"]
            elif isinstance(schema, dict) and isinstance(schema.get("type"), str):
                if schema["type"] in PRIMITIVES:
                    return schema["type"]
                if schema["type"] not in NAMED | {"array", "map"} and schema["type"] in names:
                    schema = names[schema["type"]]
                else:
                    return schema
            else:
                return schema
        return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema.get("type"))
    return str(schema)


def _describe(schema: Any) -> str:
    kind = _kind(schema)
    if isinstance(schema, dict) and "name" in schema:
        return f"{kind} {schema['name']!r}"
    return repr(kind)


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _name_problems(r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
    reader_name, writer_name = str(r.get("name", "")), str(w.get("name", ""))
    aliases = {str(a) for a in r.get("aliases", [])}
    if (
        _short(reader_name) == _short(writer_name)
        or writer_name in aliases
        or _short(writer_name) in {_short(a) for a in aliases}
    ):
        return []
    return [
        f"NAME_MISMATCH at {path or '/'}/name: the reader's {r.get('type')} is named "
        f"{reader_name!r}, the writer's {writer_name!r} (rename it back or add an alias)"
    ]
