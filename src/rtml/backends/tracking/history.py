"""Alias history: every move of an alias (promotion, forced promotion, rollback), so that a
rollback is well defined and itself recorded.

An extension of the :class:`~rtml.backends.tracking.base.ModelRegistry` port that
:mod:`rtml.models` needs; both registries (MLflow, memory) implement it. The history of an
alias is a stack: a promotion pushes a version, a rollback pops the top one and moves the
alias to the version below it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

from rtml.backends.tracking.base import ModelRegistry

Action = Literal["promote", "force", "rollback"]


@dataclass(frozen=True)
class AliasChange:
    model: str
    alias: str
    version: str  # where the alias points after the change
    previous: str | None  # where it pointed before (None: it did not exist)
    action: Action
    reason: str
    at_ms: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AliasChange:
        data = json.loads(text)
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


class RegistryWithHistory(ModelRegistry, Protocol):
    def set_version_tags(self, model: str, version: str, tags: Mapping[str, str]) -> None:
        """Add or replace tags of one version (e.g. how it compared with the champion)."""
        ...

    def record_alias_change(self, change: AliasChange) -> None:
        """Append ``change`` to the alias's history (it does not move the alias)."""
        ...

    def alias_history(self, model: str, alias: str) -> list[AliasChange]:
        """Every recorded change of ``alias`` of ``model``, oldest first."""
        ...


def champion_stack(history: Sequence[AliasChange]) -> list[str]:
    """The versions the alias went through, oldest first, with rolled-back ones removed: the
    last one is the current champion, the one before it is where a rollback goes."""
    stack: list[str] = []
    for change in history:
        if change.action == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != change.version:
                stack.append(change.version)
        elif not stack or stack[-1] != change.version:
            stack.append(change.version)
    return stack
