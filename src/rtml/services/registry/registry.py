"""The schema registry's rules (Confluent's semantics) over a :class:`SchemaStore`.

- A schema's global id depends only on its type and canonical text: the same schema
  registered twice, or under another subject, gets the same id.
- Registering a schema a subject already holds (not deleted) returns its id and
  version without a new version; otherwise the subject's compatibility level is
  enforced against its live versions, and the new version is the highest ever + 1.
- Deletes are soft first (the version is hidden, its number never reused); a
  ``permanent`` delete of a soft-deleted version removes it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rtml.backends.schema_store.base import SchemaStore, StoredSchema, SubjectVersion, VersionExistsError
from rtml.core.compatibility import (
    DEFAULT_LEVEL,
    CompatibilityLevel,
    InvalidSchemaError,
    ParsedSchema,
    check_compatibility,
    parse_schema,
)
from rtml.services.registry import errors

LATEST = -1
MAX_VERSION = 2**31 - 1
_REGISTER_ATTEMPTS = 5
_CACHE_SIZE = 2048


def parse_version(text: str | int) -> int:
    """A version number, or ``LATEST`` for ``"latest"``/``-1``; else 42202."""
    if isinstance(text, str) and text.strip().lower() == "latest":
        return LATEST
    raw = str(text).strip()
    if not raw.lstrip("-").isdigit():
        raise errors.InvalidVersion(str(text))
    version = int(raw)
    if version == LATEST:
        return LATEST
    if not 1 <= version <= MAX_VERSION:
        raise errors.InvalidVersion(str(text))
    return version


@dataclass(frozen=True)
class Registered:
    """One version of a subject with its schema."""

    subject: str
    version: int
    schema: StoredSchema
    deleted: bool = False


class SchemaRegistry:
    def __init__(self, store: SchemaStore) -> None:
        self.store = store
        self._parsed: dict[int, ParsedSchema] = {}  # by id: an id's text never changes
        self._lock = threading.Lock()

    # -- schemas and subjects ------------------------------------------------------

    def register(self, subject: str, schema_type: str, text: str, *, normalize: bool = False) -> Registered:
        new = self.parse(schema_type, text, normalize=normalize)
        for _ in range(_REGISTER_ATTEMPTS):
            rows = self.store.versions(subject=subject)
            live = [r for r in rows if not r.deleted]
            for row in reversed(live):
                stored = self.schema(row.schema_id)
                if stored.fingerprint == new.fingerprint:
                    return Registered(subject, row.version, stored)
            previous = [(f"version {r.version}", self._parsed_schema(r.schema_id)) for r in reversed(live)]
            problems = check_compatibility(self.level(subject), new, previous)
            if problems:
                raise errors.IncompatibleSchema(
                    "Schema being registered is incompatible with an earlier schema for subject "
                    f'"{subject}", details: {problems}'
                )
            schema_id = self.store.put_schema(new.schema_type, new.text, new.fingerprint)
            version = max((r.version for r in rows), default=0) + 1
            try:
                self.store.add_version(subject, version, schema_id)
            except VersionExistsError:
                continue  # another writer registered meanwhile: check again against it
            return Registered(subject, version, self.schema(schema_id))
        raise errors.StoreError(
            f"registering under subject '{subject}' lost {_REGISTER_ATTEMPTS} races with concurrent "
            "registrations; retry"
        )

    def lookup(
        self, subject: str, schema_type: str, text: str, *, normalize: bool = False, deleted: bool = False
    ) -> Registered:
        visible = self._visible(subject, deleted=deleted)
        new = self.parse(schema_type, text, normalize=normalize)
        for row in reversed(visible):
            stored = self.schema(row.schema_id)
            if stored.fingerprint == new.fingerprint:
                return Registered(subject, row.version, stored, row.deleted)
        raise errors.SchemaNotFound("Schema not found")

    def subjects(self, *, deleted: bool = False, deleted_only: bool = False, prefix: str = "") -> list[str]:
        live: set[str] = set()
        known: set[str] = set()
        for row in self.store.versions():
            known.add(row.subject)
            if not row.deleted:
                live.add(row.subject)
        chosen = known - live if deleted_only else known if deleted else live
        return sorted(s for s in chosen if s.startswith(prefix))

    def versions(self, subject: str, *, deleted: bool = False, deleted_only: bool = False) -> list[int]:
        rows = self.store.versions(subject=subject)
        if deleted_only:
            chosen = [r.version for r in rows if r.deleted]
        else:
            chosen = [r.version for r in rows if deleted or not r.deleted]
        if not rows or (not chosen and not deleted_only):
            raise errors.SubjectNotFound(subject)
        return chosen

    def version(self, subject: str, version: str | int, *, deleted: bool = False) -> Registered:
        number = parse_version(version)
        row = self._find(self._visible(subject, deleted=deleted), number)
        return Registered(subject, row.version, self.schema(row.schema_id), row.deleted)

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        rows = self.store.versions(subject=subject)
        if not rows:
            raise errors.SubjectNotFound(subject)
        live = [r.version for r in rows if not r.deleted]
        if permanent:
            if live:
                raise errors.SubjectNotSoftDeleted(subject)
            numbers = [r.version for r in rows]
            self.store.delete_versions(subject, numbers, permanent=True)
            self.store.set_config(subject, None)
            return numbers
        if not live:
            raise errors.SubjectSoftDeleted(subject)
        self.store.delete_versions(subject, live, permanent=False)
        return live

    def delete_version(self, subject: str, version: str | int, *, permanent: bool = False) -> int:
        number = parse_version(version)
        rows = self.store.versions(subject=subject)
        live = [r for r in rows if not r.deleted]
        if not (rows if permanent else live):
            raise errors.SubjectNotFound(subject)
        row = self._find(rows if permanent or number != LATEST else live, number)
        if permanent and not row.deleted:
            raise errors.VersionNotSoftDeleted(subject, row.version)
        if not permanent and row.deleted:
            raise errors.VersionSoftDeleted(subject, row.version)
        self.store.delete_versions(subject, [row.version], permanent=permanent)
        return row.version

    def schema(self, schema_id: int) -> StoredSchema:
        stored = self.store.get_schema(schema_id)
        if stored is None:
            raise errors.SchemaNotFound(f"Schema {schema_id} not found")
        return stored

    def schema_by_id(self, schema_id: int) -> StoredSchema:
        """A schema some subject version (possibly soft-deleted) still refers to."""
        if not self.store.versions(schema_id=schema_id):
            raise errors.SchemaNotFound(f"Schema {schema_id} not found")
        return self.schema(schema_id)

    def uses_of(self, schema_id: int, *, deleted: bool = False) -> list[SubjectVersion]:
        rows = self.store.versions(schema_id=schema_id)
        if not rows:
            raise errors.SchemaNotFound(f"Schema {schema_id} not found")
        return [r for r in rows if deleted or not r.deleted]

    # -- compatibility -------------------------------------------------------------

    def level(self, subject: str | None = None) -> CompatibilityLevel:
        """The level in force for ``subject``: its own, else the global one."""
        found = self.store.get_config(subject) if subject is not None else None
        found = found or self.store.get_config(None)
        return CompatibilityLevel(found) if found else DEFAULT_LEVEL

    def get_config(self, subject: str | None, *, default_to_global: bool = False) -> CompatibilityLevel:
        if subject is None:
            return self.level()
        found = self.store.get_config(subject)
        if found:
            return CompatibilityLevel(found)
        if default_to_global:
            return self.level()
        raise errors.SubjectConfigNotFound(subject)

    def set_config(self, subject: str | None, level: object) -> CompatibilityLevel:
        valid = {lv.value for lv in CompatibilityLevel}
        if not isinstance(level, str) or level.upper() not in valid:
            raise errors.InvalidCompatibilityLevel(
                f"Invalid compatibility level {level!r}. Valid values are "
                + ", ".join(sorted(v.lower() for v in valid))
            )
        chosen = CompatibilityLevel(level.upper())
        self.store.set_config(subject, chosen.value)
        return chosen

    def delete_config(self, subject: str | None) -> CompatibilityLevel:
        """Remove a level; return the one removed (the global one falls back to BACKWARD)."""
        if subject is None:
            previous = self.level()
        else:
            found = self.store.get_config(subject)
            if not found:
                raise errors.SubjectNotFound(subject)
            previous = CompatibilityLevel(found)
        self.store.set_config(subject, None)
        return previous

    def test_compatibility(
        self,
        subject: str,
        version: str | int | None,
        schema_type: str,
        text: str,
        *,
        normalize: bool = False,
    ) -> list[str]:
        """Problems of ``text`` against one version (``None``: against what the level
        says, as a registration would be checked); [] when compatible."""
        new = self.parse(schema_type, text, normalize=normalize)
        live = [r for r in self.store.versions(subject=subject) if not r.deleted]
        level = self.level(subject)
        if version is None:
            targets = list(reversed(live))
        else:
            number = parse_version(version)
            if not live:
                if number == LATEST:
                    return []
                raise errors.SubjectNotFound(subject)
            targets = [self._find(live, number)]
        previous = [(f"version {r.version}", self._parsed_schema(r.schema_id)) for r in targets]
        return check_compatibility(level, new, previous)

    # -- helpers -------------------------------------------------------------------

    @staticmethod
    def parse(schema_type: str, text: object, *, normalize: bool = False) -> ParsedSchema:
        if not isinstance(text, str) or not text.strip():
            raise errors.InvalidSchema("Empty schema")
        try:
            return parse_schema(schema_type, text, normalize=normalize)
        except InvalidSchemaError as exc:
            raise errors.InvalidSchema(exc.reason) from None

    def _parsed_schema(self, schema_id: int) -> ParsedSchema:
        with self._lock:
            cached = self._parsed.get(schema_id)
        if cached is not None:
            return cached
        stored = self.schema(schema_id)
        parsed = parse_schema(stored.schema_type, stored.text)
        with self._lock:
            if len(self._parsed) >= _CACHE_SIZE:
                self._parsed.clear()
            self._parsed[schema_id] = parsed
        return parsed

    def _visible(self, subject: str, *, deleted: bool) -> list[SubjectVersion]:
        rows = [r for r in self.store.versions(subject=subject) if deleted or not r.deleted]
        if not rows:
            raise errors.SubjectNotFound(subject)
        return rows

    @staticmethod
    def _find(rows: list[SubjectVersion], number: int) -> SubjectVersion:
        if number == LATEST:
            return rows[-1]
        for row in rows:
            if row.version == number:
                return row
        raise errors.VersionNotFound(number)
