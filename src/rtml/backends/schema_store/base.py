"""The schema store port: what rtml's schema registry keeps, and nothing of its rules.

The store holds schemas by global id, subjects' versions (soft-deleted ones too) and
compatibility settings. The registry (:mod:`rtml.services.registry.registry`) decides
what to store; the store only makes each call atomic and durable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from rtml.errors import RtmlError


@dataclass(frozen=True, slots=True)
class StoredSchema:
    id: int
    schema_type: str
    text: str
    fingerprint: str


@dataclass(frozen=True, slots=True, order=True)
class SubjectVersion:
    subject: str
    version: int
    schema_id: int
    deleted: bool = False


class SchemaStoreError(RtmlError):
    """The store failed (a database error other than being unreachable)."""

    http_status = 500


class VersionExistsError(RtmlError):
    """``add_version`` lost a race: another writer took that version number first."""

    http_status = 409


@runtime_checkable
class SchemaStore(Protocol):
    """Schemas by id, subject versions and compatibility settings.

    Backends raise :class:`~rtml.errors.BackendUnavailableError` when their server
    cannot be reached (within a bounded time) and :class:`SchemaStoreError` for other
    database failures.
    """

    def put_schema(self, schema_type: str, text: str, fingerprint: str) -> int:
        """The id of the schema with this fingerprint, allotted (max id + 1) if new."""
        ...

    def get_schema(self, schema_id: int) -> StoredSchema | None: ...

    def versions(self, *, subject: str | None = None, schema_id: int | None = None) -> list[SubjectVersion]:
        """Versions (soft-deleted ones included), filtered by subject and/or schema id,
        ordered by subject then version."""
        ...

    def add_version(self, subject: str, version: int, schema_id: int) -> None:
        """Record ``subject``'s ``version``; :class:`VersionExistsError` if it exists."""
        ...

    def delete_versions(self, subject: str, versions: Sequence[int], *, permanent: bool) -> None:
        """Soft-delete (mark) or, with ``permanent``, remove versions of ``subject``."""
        ...

    def get_config(self, subject: str | None) -> str | None:
        """The compatibility level set for ``subject`` (``None``: the global one)."""
        ...

    def set_config(self, subject: str | None, level: str | None) -> None:
        """Set, or with ``level=None`` remove, a compatibility level."""
        ...

    def close(self) -> None: ...
