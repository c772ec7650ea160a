"""The validator and deduper of a project, built from its definitions and settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rtml.backends.schema_store import (
    EmbeddedSchemaRegistryConfig,
    ExternalSchemaRegistryConfig,
    open_schema_store,
)
from rtml.config import ValidatorSettings
from rtml.core.validation import Deduper, Validator
from rtml.definitions.source import Source
from rtml.errors import ConfigError
from rtml.project import Project
from rtml.timeutil import parse_timestamp, utc_now


def project_source(project: Project, settings: ValidatorSettings) -> Source:
    """The source whose events the raw topic carries: ``validator.source``, or the only one."""
    sources = project.definitions.sources
    if settings.source is not None:
        if settings.source not in sources:
            known = ", ".join(sorted(sources)) or "none"
            raise ConfigError(
                f"validator.source is {settings.source!r}, but the project defines no such source "
                f"(sources: {known}). Fix: set validator.source in rtml.yaml to one of them"
            )
        return sources[settings.source]
    if len(sources) != 1:
        known = ", ".join(sorted(sources)) or "none"
        raise ConfigError(
            f"the validator needs to know which source the raw topic carries; the project "
            f"defines {len(sources)} ({known}). Fix: set validator.source in rtml.yaml"
        )
    return next(iter(sources.values()))


def registered_schema_ids(project: Project) -> frozenset[int] | None:
    """The registry ids a Confluent wire-format header may name: those registered under
    ``<project>.events.raw-value`` in rtml's own registry. ``None`` (any id accepted)
    for an external registry, or when nothing is registered yet."""
    from rtml.services.registry.client import value_subject

    config = project.config.schema_registry
    if isinstance(config, ExternalSchemaRegistryConfig):
        return None
    if isinstance(config, EmbeddedSchemaRegistryConfig):
        path = config.path if config.path.is_absolute() else project.root / config.path
        if str(config.path) == ":memory:" or not path.exists():
            return None
    store = open_schema_store(config, base_dir=project.root)
    try:
        ids = frozenset(v.schema_id for v in store.versions(subject=value_subject(project)) if not v.deleted)
    finally:
        store.close()
    return ids or None


def settings_clock(settings: ValidatorSettings) -> Callable[[], datetime]:
    """The clock future timestamps are judged against: the wall clock, or a fixed time."""
    if settings.clock == "wall":
        return utc_now
    fixed = parse_timestamp(settings.clock)
    return lambda: fixed


def build_validator(
    project: Project, settings: ValidatorSettings, *, now: Callable[[], datetime] | None = None
) -> Validator:
    """The validator of the project's source; ``now`` defaults to ``validator.clock``."""
    source = project_source(project, settings)
    return Validator.build(
        source,
        project.definitions.schemas[source.name].document,
        max_future_skew=settings.max_future_skew,
        now=now or settings_clock(settings),
        known_schema_ids=registered_schema_ids(project),
        max_bytes=settings.max_event_bytes,
    )


def build_deduper(settings: ValidatorSettings) -> Deduper:
    return Deduper(horizon=settings.dedupe_horizon, max_ids=settings.dedupe_max_ids)
