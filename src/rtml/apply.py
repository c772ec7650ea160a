"""Carry out ``rtml apply``: check the definitions, create the topics, record the plan."""

from __future__ import annotations

from rtml.backends.schema_store import ExternalSchemaRegistryConfig, open_schema_store
from rtml.core.plan import PlanItem, make_plan, read_applied, write_applied
from rtml.project import INVALID_EVENTS, RAW_EVENTS, VALID_EVENTS, Project
from rtml.services.registry.client import register_project_schemas
from rtml.services.registry.registry import SchemaRegistry


def apply_project(project: Project, *, dry_run: bool) -> list[PlanItem]:
    """Check the definitions, compute the plan and, unless ``dry_run``, carry it out:
    create the pipeline's topics and record the definitions' fingerprints."""
    defs = project.definitions
    state = project.data_dir / "applied.json"
    plan = make_plan(defs, read_applied(state))
    if not dry_run:
        log = project.event_log()
        try:
            for name in (RAW_EVENTS, VALID_EVENTS, INVALID_EVENTS):
                log.create_topic(project.topic(name), project.config.event_log.partitions)
        finally:
            log.close()
        register_schemas(project)
        write_applied(state, plan, defs.fingerprint())
    return plan


def register_schemas(project: Project) -> dict[str, int]:
    """Register each source's schema in the configured registry: rtml's own (directly on
    its store, no server needed) or an external one by URL. Returns ids by source."""
    config = project.config.schema_registry
    if isinstance(config, ExternalSchemaRegistryConfig):
        return register_project_schemas(project, config.registry_url)
    store = open_schema_store(config)
    try:
        return register_project_schemas(project, SchemaRegistry(store))
    finally:
        store.close()
