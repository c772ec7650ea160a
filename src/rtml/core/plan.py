"""What ``rtml apply`` would change: each definition new, changed or unchanged.

Definitions are fingerprinted (a hash of their meaning); comparing with the
fingerprints recorded by the last apply tells which stored state (tiles, models)
a change makes stale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rtml.definitions.base import Definition
from rtml.definitions.feature_view import FeatureView
from rtml.definitions.loader import Definitions
from rtml.definitions.model import Model
from rtml.errors import ConfigError

Change = Literal["new", "changed", "unchanged", "removed"]


@dataclass(frozen=True)
class PlanItem:
    kind: str
    name: str
    change: Change
    fingerprint: str
    detail: str


def describe(item: Definition) -> str:
    """One line saying what a definition holds, for the plan table."""
    if isinstance(item, FeatureView):
        keys = ", ".join(item.join_keys)
        return f"{len(item.features)} features by ({keys}) from {item.source.name}"
    if isinstance(item, Model):
        return f"{len(item.feature_names)} features, label {item.label.name}, metric {item.metric}"
    return item.description or ""


def make_plan(defs: Definitions, applied: dict[str, str]) -> list[PlanItem]:
    """Compare current definitions with ``applied`` (``"Kind name" -> fingerprint``)."""
    items: list[PlanItem] = []
    current = {d.title: d for d in defs.all()}
    for title, item in current.items():
        before = applied.get(title)
        fp = item.fingerprint()
        change: Change = "new" if before is None else ("unchanged" if before == fp else "changed")
        items.append(PlanItem(item.kind, item.name, change, fp, describe(item)))
    for title, fp in applied.items():
        if title not in current:
            kind, _, name = title.partition(" ")
            items.append(PlanItem(kind, name.strip("'"), "removed", fp, ""))
    return items


def read_applied(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(k): str(v) for k, v in data["definitions"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path} is corrupt ({exc}). Fix: delete it and run `rtml apply`") from None


def write_applied(path: Path, plan: list[PlanItem], project_fingerprint: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "fingerprint": project_fingerprint,
        "definitions": {f"{i.kind} {i.name!r}": i.fingerprint for i in plan if i.change != "removed"},
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(path)
