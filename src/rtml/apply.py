"""Carry out ``rtml apply``: check the definitions, create the topics, record the plan."""

from __future__ import annotations

from rtml.core.plan import PlanItem, make_plan, read_applied, write_applied
from rtml.project import INVALID_EVENTS, RAW_EVENTS, VALID_EVENTS, Project


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
        write_applied(state, plan, defs.fingerprint())
    return plan
