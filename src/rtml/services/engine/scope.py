"""What a project's engine works on: its source, its feature views, their runtime."""

from __future__ import annotations

import time

from rtml.core.aggregation import Aggregator, build
from rtml.definitions.feature_view import FeatureView
from rtml.definitions.source import Source
from rtml.errors import ConfigError
from rtml.project import Project
from rtml.services.engine.settings import EngineSettings
from rtml.timeutil import parse_duration


def engine_source(project: Project, settings: EngineSettings) -> Source:
    """``engine.source``, else ``validator.source``, else the project's only source."""
    sources = project.definitions.sources
    name = settings.source or project.config.validator.source
    if name is not None:
        if name not in sources:
            known = ", ".join(sorted(sources)) or "none"
            raise ConfigError(
                f"the engine's source is {name!r}, but the project defines no such source "
                f"(sources: {known}). Fix: set engine.source in rtml.yaml to one of them"
            )
        return sources[name]
    if len(sources) != 1:
        known = ", ".join(sorted(sources)) or "none"
        raise ConfigError(
            f"the engine needs to know which source the valid topic carries; the project defines "
            f"{len(sources)} ({known}). Fix: set engine.source in rtml.yaml"
        )
    return next(iter(sources.values()))


def engine_views(project: Project, source: Source) -> list[FeatureView]:
    """The online feature views of ``source``, by name."""
    views = project.definitions.feature_views.values()
    return sorted((v for v in views if v.source.name == source.name and v.online), key=lambda v: v.name)


def build_aggregator(views: list[FeatureView], settings: EngineSettings) -> Aggregator:
    return build(views, exact_for=parse_duration(settings.exact_for))


def wall_ms() -> int:
    return time.time_ns() // 1_000_000
