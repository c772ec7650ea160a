"""JSON Schema: parsing (jsonschema's meta-schema check) and compatibility.

A reader schema "can read" data written with a writer schema when every document the
writer accepts, the reader accepts too. The checks follow Confluent's JSON Schema rules
for the common cases (a conservative approximation: a change it cannot prove safe is
reported). Each problem is named as Confluent names it:

- ``type``: the reader must accept every writer type (``integer`` is a ``number``):
  TYPE_NARROWED;
- ``enum``/``const``: the reader's values must include every writer value:
  ENUM_ARRAY_NARROWED (an enum the writer lacked: ENUM_ADDED);
- numbers: ``minimum``/``exclusiveMinimum``/``maximum``/``exclusiveMaximum`` may only
  widen (MINIMUM_INCREASED, MAXIMUM_DECREASED, ... _ADDED); ``multipleOf`` must divide
  the writer's (MULTIPLE_OF_CHANGED);
- strings: ``minLength``/``maxLength`` may only widen; ``pattern`` and ``format`` may
  only be removed, never added or changed;
- objects (the content model is open unless ``additionalProperties`` says otherwise):
  a property in both is compared recursively; a property added to an open writer
  model must accept anything (PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL), or what the
  writer's ``additionalProperties`` schema allowed (..._NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL);
  a property removed from a closed reader model is refused
  (PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL); a new ``required`` property needs a
  ``default`` (REQUIRED_PROPERTY_ADDED); ``additionalProperties`` may only widen;
  ``min/maxProperties`` may only widen; ``patternProperties`` and dependencies must
  not be added or changed;
- arrays: ``items``/``prefixItems`` (and draft-7 tuple ``items``/``additionalItems``)
  recursively; ``min/maxItems`` may only widen; ``uniqueItems`` may not be added;
- ``anyOf``/``oneOf``: each writer branch must be readable; a writer that is not a
  union must be readable by some reader branch; ``allOf``: every reader part must
  read the writer (writer parts are merged); ``not`` must be unchanged;
- ``$ref`` to the same document (``#/...``) is followed; a remote ``$ref`` must be
  unchanged.
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any
from urllib.parse import unquote

from jsonschema import exceptions as jsonschema_exceptions
from jsonschema.validators import Draft7Validator, validator_for

from rtml.core.compatibility import InvalidSchemaError, ParsedSchema

_ANY: dict[str, Any] = {}
_COMBINATORS = ("anyOf", "oneOf")


def parse_json_schema(text: str, *, normalize: bool = False) -> ParsedSchema:
    """Parse a JSON Schema and check it against its meta-schema (draft-07 when it
    names none, as Confluent does)."""
    try:
        document = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise InvalidSchemaError(f"Invalid schema: not valid JSON ({exc})") from None
    if not isinstance(document, dict | bool):
        raise InvalidSchemaError("Invalid JSON Schema: the top level must be an object or a boolean")
    try:
        validator_for(document, default=Draft7Validator).check_schema(document)
    except jsonschema_exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "/"
        raise InvalidSchemaError(f"Invalid JSON Schema at {where}: {exc.message}") from None
    except Exception as exc:  # unusual documents can make the meta-schema check itself fail
        raise InvalidSchemaError(f"Invalid JSON Schema: {type(exc).__name__}: {exc}") from None
    canonical = json.dumps(
        document, separators=(",", ":"), ensure_ascii=False, sort_keys=normalize, allow_nan=False
    )
    return ParsedSchema(schema_type="JSON", text=canonical, document=document, parsed=document)


def json_read_problems(reader: Any, writer: Any) -> list[str]:
    """Why ``reader`` does not accept every document ``writer`` accepts ([] if it does)."""
    return _Check(reader, writer).compare(reader, writer, "#")


class _Check:
    def __init__(self, reader_root: Any, writer_root: Any) -> None:
        self._roots = (reader_root, writer_root)
        self._in_progress: set[tuple[int, int]] = set()

    def compare(self, reader: Any, writer: Any, path: str) -> list[str]:
        key = (id(reader), id(writer))
        if key in self._in_progress:  # a recursive schema: assume the pair readable
            return []
        self._in_progress.add(key)
        try:
            r, ref_problem = _resolve(reader, self._roots[0])
            w, _ = _resolve(writer, self._roots[1])
            if ref_problem and not (isinstance(writer, dict) and writer.get("$ref") == reader.get("$ref")):
                return [f"REF_CHANGED at {path}: {ref_problem}"]
            return self._compare(r, w, path)
        finally:
            self._in_progress.discard(key)

    def _compare(self, r: Any, w: Any, path: str) -> list[str]:
        if r is True or r == _ANY or w is False:
            return []
        if r is False:
            return [f"TYPE_NARROWED at {path}: the reader accepts nothing (schema false)"]
        if w is True:
            w = _ANY
        if not isinstance(r, dict) or not isinstance(w, dict):
            return [f"TYPE_CHANGED at {path}: not a schema"]
        if any(k in w for k in _COMBINATORS):
            return self._writer_union(r, w, path)
        if "allOf" in w:
            return self.compare(r, _merge_all_of(w), path)
        if any(k in r for k in (*_COMBINATORS, "allOf")):
            return self._reader_combined(r, w, path)
        problems = _type_problems(r, w, path) + _enum_problems(r, w, path)
        if "not" in r and r["not"] != w.get("not"):
            problems.append(f"NOT_TYPE_CHANGED at {path}/not: the reader adds or changes 'not'")
        types = _types(w)
        if types is None or types & {"number", "integer"}:
            problems += _number_problems(r, w, path)
        if types is None or "string" in types:
            problems += _string_problems(r, w, path)
        if types is None or "object" in types:
            problems += self._object_problems(r, w, path)
        if types is None or "array" in types:
            problems += self._array_problems(r, w, path)
        return problems

    def _writer_union(self, r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
        rest = {k: v for k, v in w.items() if k not in _COMBINATORS}
        problems: list[str] = []
        for key in _COMBINATORS:
            for i, branch in enumerate(w.get(key, [])):
                merged = {**rest, **branch} if isinstance(branch, dict) else branch
                problems += self.compare(r, merged, f"{path}/{key}/{i}")
        return problems

    def _reader_combined(self, r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
        rest = {k: v for k, v in r.items() if k not in (*_COMBINATORS, "allOf")}
        problems = self.compare(rest, w, path) if rest else []
        for i, part in enumerate(r.get("allOf", [])):
            problems += self.compare(part, w, f"{path}/allOf/{i}")
        for key in _COMBINATORS:
            if key not in r:
                continue
            attempts = [self.compare(b, w, f"{path}/{key}/{i}") for i, b in enumerate(r[key])]
            if attempts and all(attempts):
                problems.append(
                    f"COMBINED_TYPE_SUBSCHEMAS_CHANGED at {path}/{key}: no branch of the reader's "
                    f"{key} accepts everything the writer accepts ({attempts[0][0]})"
                )
        return problems

    def _object_problems(self, r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
        problems: list[str] = []
        rp, wp = r.get("properties") or {}, w.get("properties") or {}
        r_extra, w_extra = _additional(r), _additional(w)
        for name in [*rp, *(n for n in wp if n not in rp)]:
            where = f"{path}/properties/{name}"
            if name in rp and name in wp:
                problems += self.compare(rp[name], wp[name], where)
            elif name in wp:  # removed from the reader: its additionalProperties applies
                if r_extra is False:
                    problems.append(
                        f"PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL at {where}: the reader "
                        f"allows no additional properties, and the writer had {name!r}"
                    )
                elif r_extra is not True:
                    found = self.compare(r_extra, wp[name], where)
                    problems += [
                        f"PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL: {p}" for p in found
                    ]
            elif w_extra is not False:  # added to the reader; the writer may have had it
                allowed = _ANY if w_extra is True else w_extra
                found = self.compare(rp[name], allowed, where)
                kind = "OPEN" if w_extra is True else "NOT_COVERED_BY_PARTIALLY_OPEN"
                problems += [f"PROPERTY_ADDED_{kind}_CONTENT_MODEL: {p}" for p in found[:1]]
        for name in r.get("required") or []:
            has_default = isinstance(rp.get(name), dict) and "default" in rp[name]
            if name not in (w.get("required") or []) and not has_default:
                problems.append(
                    f"REQUIRED_PROPERTY_ADDED at {path}/required: {name!r} is required by the reader, "
                    "not by the writer (make it optional or give it a default)"
                )
        if r_extra is not True and w_extra is not False:
            if r_extra is False:
                problems.append(
                    f"ADDITIONAL_PROPERTIES_REMOVED at {path}/additionalProperties: the writer "
                    "allowed additional properties, the reader does not"
                )
            else:
                found = self.compare(
                    r_extra, _ANY if w_extra is True else w_extra, f"{path}/additionalProperties"
                )
                problems += [f"ADDITIONAL_PROPERTIES_NARROWED: {p}" for p in found]
        problems += _count_problems(r, w, path, "minProperties", "maxProperties")
        rpp, wpp = r.get("patternProperties") or {}, w.get("patternProperties") or {}
        for pattern in rpp:
            if pattern in wpp:
                problems += self.compare(rpp[pattern], wpp[pattern], f"{path}/patternProperties/{pattern}")
            else:
                problems.append(f"PATTERN_PROPERTY_ADDED at {path}/patternProperties: {pattern!r}")
        for key in ("dependencies", "dependentRequired", "dependentSchemas", "propertyNames"):
            if key in r and r[key] != w.get(key):
                problems.append(f"DEPENDENCY_CHANGED at {path}/{key}: the reader adds or changes {key}")
        return problems

    def _array_problems(self, r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
        r_prefix, r_rest = _items(r)
        w_prefix, w_rest = _items(w)
        problems: list[str] = []
        for i in range(max(len(r_prefix), len(w_prefix))):
            rs = r_prefix[i] if i < len(r_prefix) else r_rest
            ws = w_prefix[i] if i < len(w_prefix) else w_rest
            problems += self.compare(rs, ws, f"{path}/items/{i}")
        problems += self.compare(r_rest, w_rest, f"{path}/items")
        problems += _count_problems(r, w, path, "minItems", "maxItems")
        if r.get("uniqueItems") and not w.get("uniqueItems"):
            problems.append(f"UNIQUE_ITEMS_ADDED at {path}/uniqueItems")
        if "contains" in r and r["contains"] != w.get("contains"):
            problems.append(f"CONTAINS_CHANGED at {path}/contains")
        return problems


def _resolve(schema: Any, root: Any) -> tuple[Any, str | None]:
    """Follow local ``$ref``s (``#/definitions/x``); a remote one is returned as a problem."""
    for _ in range(32):
        if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str)):
            return schema, None
        ref = schema["$ref"]
        if not ref.startswith("#"):
            return _ANY, f"the remote $ref {ref!r} cannot be compared"
        target: Any = root
        for part in [p for p in ref[1:].split("/") if p]:
            part = unquote(part).replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                return _ANY, f"$ref {ref!r} points nowhere"
        schema = target
    return schema, None


def _merge_all_of(w: dict[str, Any]) -> dict[str, Any]:
    merged = {k: v for k, v in w.items() if k != "allOf"}
    for part in w["allOf"]:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = sorted({*merged.get("required", []), *value})
            else:
                merged.setdefault(key, value)
    return merged


def _types(schema: dict[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    return {kind} if isinstance(kind, str) else set(kind)


def _type_problems(r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
    rt, wt = _types(r), _types(w)
    if rt is None:
        return []
    if wt is None:
        return [f"TYPE_NARROWED at {path}/type: the writer accepted any type, the reader only {sorted(rt)}"]
    lost = sorted(t for t in wt if t not in rt and not (t == "integer" and "number" in rt))
    if lost:
        return [f"TYPE_NARROWED at {path}/type: the reader no longer accepts {lost}"]
    return []


def _values(schema: dict[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _enum_problems(r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
    rv = _values(r)
    if rv is None:
        return []
    wv = _values(w)
    if wv is None:
        return [f"ENUM_ADDED at {path}/enum: the reader restricts values the writer did not"]
    lost = [v for v in wv if v not in rv]
    if lost:
        return [f"ENUM_ARRAY_NARROWED at {path}/enum: the reader no longer accepts {lost}"]
    return []


Bound = tuple[Fraction, bool]  # (value, exclusive)


def _bound(schema: dict[str, Any], inclusive_key: str, exclusive_key: str) -> Bound | None:
    found: list[Bound] = []
    value, exclusive = schema.get(inclusive_key), schema.get(exclusive_key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        found.append((Fraction(str(value)), exclusive is True))  # draft-4 boolean exclusive
    if isinstance(exclusive, int | float) and not isinstance(exclusive, bool):
        found.append((Fraction(str(exclusive)), True))
    if not found:
        return None
    lower = inclusive_key == "minimum"
    return max(found, key=lambda b: (b[0], b[1])) if lower else min(found, key=lambda b: (b[0], not b[1]))


def _number_problems(r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    for inclusive, exclusive, lower in (
        ("minimum", "exclusiveMinimum", True),
        ("maximum", "exclusiveMaximum", False),
    ):
        rb, wb = _bound(r, inclusive, exclusive), _bound(w, inclusive, exclusive)
        if rb is None:
            continue
        name = inclusive.upper()
        if wb is None:
            problems.append(f"{name}_ADDED at {path}/{inclusive}: the reader adds a bound of {float(rb[0])}")
            continue
        tighter = (
            (wb[0] < rb[0] or (wb[0] == rb[0] and rb[1] and not wb[1]))
            if lower
            else (wb[0] > rb[0] or (wb[0] == rb[0] and rb[1] and not wb[1]))
        )
        if tighter:
            change = "INCREASED" if lower else "DECREASED"
            problems.append(f"{name}_{change} at {path}/{inclusive}: {float(wb[0])} -> {float(rb[0])}")
    rm, wm = r.get("multipleOf"), w.get("multipleOf")
    if isinstance(rm, int | float) and rm:
        if not isinstance(wm, int | float) or (Fraction(str(wm)) / Fraction(str(rm))).denominator != 1:
            problems.append(f"MULTIPLE_OF_CHANGED at {path}/multipleOf: {wm} -> {rm}")
    return problems


def _string_problems(r: dict[str, Any], w: dict[str, Any], path: str) -> list[str]:
    problems = _count_problems(r, w, path, "minLength", "maxLength")
    for key in ("pattern", "format"):
        if key in r and r[key] != w.get(key):
            change = "CHANGED" if key in w else "ADDED"
            problems.append(f"{key.upper()}_{change} at {path}/{key}: {w.get(key)!r} -> {r[key]!r}")
    return problems


def _count_problems(r: dict[str, Any], w: dict[str, Any], path: str, low: str, high: str) -> list[str]:
    problems: list[str] = []
    r_low, w_low = r.get(low, 0), w.get(low, 0)
    if isinstance(r_low, int) and isinstance(w_low, int) and r_low > w_low:
        problems.append(f"{_snake(low)}_INCREASED at {path}/{low}: {w_low} -> {r_low}")
    if isinstance(r.get(high), int):
        w_high = w.get(high)
        if not isinstance(w_high, int):
            problems.append(f"{_snake(high)}_ADDED at {path}/{high}: {r[high]}")
        elif r[high] < w_high:
            problems.append(f"{_snake(high)}_DECREASED at {path}/{high}: {w_high} -> {r[high]}")
    return problems


def _snake(name: str) -> str:
    return "".join(f"_{c}" if c.isupper() else c for c in name).upper()


def _additional(schema: dict[str, Any]) -> Any:
    """``True`` (open), ``False`` (closed) or the schema additional properties must match."""
    extra = schema.get("additionalProperties", True)
    return True if extra == _ANY else extra


def _items(schema: dict[str, Any]) -> tuple[list[Any], Any]:
    """(positional item schemas, the schema of every further item)."""
    if isinstance(schema.get("prefixItems"), list):
        return schema["prefixItems"], schema.get("items", True)
    if isinstance(schema.get("items"), list):
        return schema["items"], schema.get("additionalItems", True)
    return [], schema.get("items", True)
