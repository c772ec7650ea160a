"""Test doubles and helpers for users testing their own definitions.

``MemoryEventLog`` is the in-process event log (the contract suite runs it beside the real
backends, so it behaves like them). ``example_project`` copies the e-commerce example into
a directory with the memory log, for fast tests.
"""

from __future__ import annotations

from pathlib import Path

from rtml.backends.event_log.config import MemoryEventLogConfig
from rtml.backends.event_log.memory import MemoryEventLog
from rtml.project import Project, init_project


def memory_event_log(partitions: int = 1) -> MemoryEventLog:
    return MemoryEventLog(MemoryEventLogConfig(partitions=partitions))


def example_project(directory: str | Path, *, event_log: str = "local") -> Project:
    """The e-commerce example in ``directory``, with the given event log backend."""
    root = init_project(Path(directory), force=True)
    return Project.load(root, environ={"RTML_EVENT_LOG__TYPE": event_log})


__all__ = ["MemoryEventLog", "example_project", "memory_event_log"]
