"""Helpers to hold the feature engine's output against the oracle (tests, users' own checks).

events = valid_events(project)                 # what the validator let through
oracle = OracleReader(views, events)
want = oracle.read("user_activity", (42,), t_ms)
got = StateReader(view).read(online.read("user_activity", [(42,)])[0], t_ms)
assert not differences(got, want)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from rtml.backends.event_log.base import EventLog
from rtml.definitions.feature_view import FeatureView
from rtml.project import VALID_EVENTS, Project
from rtml.testing.oracle import OracleEvent, view_values

REL_TOL = 1e-9


def valid_events(project: Project, log: EventLog | None = None) -> list[OracleEvent]:
    """Every event of the project's valid topic, in log order (``log``: the configured one)."""
    from rtml.services.validator.reading import read_topic

    own = log is None
    the_log = project.event_log() if log is None else log
    id_field = next(iter(project.definitions.sources.values())).id_field
    out: list[OracleEvent] = []
    try:
        for batch in read_topic(the_log, project.topic(VALID_EVENTS), purpose="oracle"):
            for record in batch:
                row = msgspec.json.decode(record.value)
                assert record.timestamp_ms is not None
                out.append(OracleEvent(ts_ms=record.timestamp_ms, event_id=str(row.get(id_field)), row=row))
    finally:
        if own:
            the_log.close()
    return out


class OracleReader:
    """:func:`rtml.testing.oracle.view_values` over ``events``, grouped by key once per view."""

    def __init__(self, views: Iterable[FeatureView], events: Sequence[OracleEvent]) -> None:
        self.views = {v.name: v for v in views}
        self.by_key: dict[str, dict[tuple[Any, ...], list[OracleEvent]]] = {}
        for name, view in self.views.items():
            index: dict[tuple[Any, ...], list[OracleEvent]] = defaultdict(list)
            for event in events:
                key = tuple(event.row.get(k) for k in view.join_keys)
                if all(v is not None for v in key):
                    index[key].append(event)
            self.by_key[name] = dict(index)

    def keys(self, view: str) -> list[tuple[Any, ...]]:
        return list(self.by_key[view])

    def read(self, view: str, key: tuple[Any, ...], t_ms: int) -> dict[str, Any]:
        v = self.views[view]
        mapping = dict(zip(v.join_keys, key, strict=True))
        return view_values(v, self.by_key[view].get(key, []), mapping, t_ms)


def same_value(a: Any, b: Any) -> bool:
    """DESIGN's equality: integers (and NULLs) exactly, floats within 1e-9 relative."""
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return False
        return bool(abs(a - b) <= REL_TOL * max(1.0, abs(a), abs(b)))
    return bool(a == b)


def differences(got: Mapping[str, Any], want: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The features of ``want`` whose value in ``got`` differs: name -> (got, want)."""
    return {k: (got.get(k), w) for k, w in want.items() if not same_value(got.get(k), w)}
