"""Load a project's definition files and check them against each other.

Every ``*.py`` file in the project directory (not starting with ``_``) is imported; the
definitions found at module level are collected by kind and name. Files may import
each other (``from entities import user``). Then :mod:`rtml.definitions.checks`
checks what no single object can check alone: columns against schemas, duplicate
names, keys a model's features need.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from rtml.definitions.base import Definition
from rtml.definitions.entity import Entity
from rtml.definitions.feature_view import FeatureView
from rtml.definitions.label import Label
from rtml.definitions.model import Model
from rtml.definitions.on_demand import OnDemandFeature
from rtml.definitions.schema import SourceSchema, from_avro_schema, from_json_schema
from rtml.definitions.source import Source
from rtml.errors import DefinitionError

KINDS: tuple[type[Definition], ...] = (Entity, Source, FeatureView, OnDemandFeature, Label, Model)


@dataclass
class Definitions:
    """Everything a project defines, by kind and name, plus each source's schema."""

    root: Path
    entities: dict[str, Entity] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    feature_views: dict[str, FeatureView] = field(default_factory=dict)
    on_demand: dict[str, OnDemandFeature] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    schemas: dict[str, SourceSchema] = field(default_factory=dict)

    def by_kind(self, kind: type[Definition]) -> dict[str, Any]:
        tables: dict[type[Definition], dict[str, Any]] = {
            Entity: self.entities,
            Source: self.sources,
            FeatureView: self.feature_views,
            OnDemandFeature: self.on_demand,
            Label: self.labels,
            Model: self.models,
        }
        return tables[kind]

    def all(self) -> list[Definition]:
        return [d for kind in KINDS for d in self.by_kind(kind).values()]

    def model(self, name: str) -> Model:
        return _lookup(self.models, name, "model")

    def feature_view(self, name: str) -> FeatureView:
        return _lookup(self.feature_views, name, "feature view")

    def fingerprint(self) -> str:
        """One hash over every definition and schema: changes when any meaning changes."""
        parts = {d.title: d.fingerprint() for d in self.all()}
        parts.update({f"schema {k}": json.dumps(v.document, sort_keys=True) for k, v in self.schemas.items()})
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _lookup(table: dict[str, Any], name: str, what: str) -> Any:
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "none"
        raise DefinitionError(
            f"no {what} named {name!r}", fix=f"use one of: {known} (see `rtml apply --dry-run`)"
        ) from None


def load_definitions(project_dir: str | Path) -> Definitions:
    """Import the project's definition files, collect and cross-check the definitions."""
    from rtml.definitions.checks import check_definitions

    root = Path(project_dir).resolve()
    files = sorted(p for p in root.glob("*.py") if not p.name.startswith("_"))
    if not files:
        raise DefinitionError(
            f"{root} has no definition files (*.py)",
            fix="run `rtml init DIR` for an example project, or write entities and features in a .py file",
        )
    defs = Definitions(root=root)
    for module in _import_files(root, files):
        for value in vars(module).values():
            if isinstance(value, Definition):
                _add(defs, value)
    for source in defs.sources.values():
        defs.schemas[source.name] = load_schema(root, source)
    check_definitions(defs)
    return defs


def _import_files(root: Path, files: list[Path]) -> list[ModuleType]:
    sys.path.insert(0, str(root))
    saved = {name: sys.modules.get(name) for name in (f.stem for f in files)}
    modules = []
    try:
        for path in files:
            if path.stem in sys.modules and getattr(sys.modules[path.stem], "__file__", None) == str(path):
                modules.append(sys.modules[path.stem])
                continue
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise DefinitionError(f"{path} cannot be imported", fix="check the file name")
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module  # so sibling files can import it by its stem
            try:
                spec.loader.exec_module(module)
            except DefinitionError:
                raise
            except Exception as exc:
                raise DefinitionError(
                    f"importing failed: {type(exc).__name__}: {exc}",
                    origin=_error_origin(exc, path),
                    fix="fix the Python error in this file",
                ) from exc
            modules.append(module)
    finally:
        sys.path.remove(str(root))
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return modules


def _error_origin(exc: BaseException, path: Path) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(str(path.parent))]
    if frames:
        return f"{frames[-1].filename}:{frames[-1].lineno}"
    return str(path)


def _add(defs: Definitions, item: Definition) -> None:
    table = defs.by_kind(type(item))
    existing = table.get(item.name)
    if existing is None:
        table[item.name] = item
    elif existing is not item and existing != item:
        raise DefinitionError(
            f"the name {item.name!r} is used twice (also at {existing.origin})",
            obj=item.title,
            field="name",
            fix=f"rename one of the two {item.kind}s",
            origin=item.origin,
        )


def load_schema(root: Path, source: Source) -> SourceSchema:
    """Read and parse a source's schema file."""
    path = (root / source.schema).resolve()
    if not path.is_file():
        raise source.fail(
            "schema", f"schema file {path} does not exist", "fix the path (relative to the project)"
        )
    try:
        document = json.loads(path.read_text())
        return from_avro_schema(document) if path.suffix == ".avsc" else from_json_schema(document)
    except (json.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
        raise source.fail("schema", f"{path} is not a usable schema ({exc})", "fix the schema file") from None
