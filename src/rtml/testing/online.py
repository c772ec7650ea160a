"""Filling an online store from an aggregation runtime, as the engine does after a batch.

runtime = build([user_activity, product_stats])
runtime.apply(EventBatch.from_rows(rows))
write_states(store, runtime)          # every key of every view, with its fingerprint
get_online_features(project, ["user_activity"], [{"user_id": 42}], store=store)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rtml.backends.online_store import Key, OnlineStore
from rtml.core.aggregation import Aggregator, ViewAggregator


def as_key(key: Any) -> Key:
    """A runtime's key (a value, or a tuple for several join keys) as a store key."""
    return tuple(key) if isinstance(key, tuple | list) else (key,)


def write_states(
    store: OnlineStore,
    runtime: Aggregator | ViewAggregator,
    keys: Iterable[Any] | None = None,
    *,
    ttl_ms: int | None = None,
) -> int:
    """Write the state of ``keys`` (default: every key seen) of each view of ``runtime``
    and record each view's fingerprint. Returns the number of states written."""
    views = [runtime] if isinstance(runtime, ViewAggregator) else list(runtime.views.values())
    chosen = None if keys is None else list(keys)
    written = 0
    for rt in views:
        states = rt.states_of(rt.keys() if chosen is None else chosen)
        store.write(rt.view.name, {as_key(k): blob for k, blob in states.items()}, ttl_ms=ttl_ms)
        store.set_fingerprint(rt.view.name, rt.fingerprint)
        written += len(states)
    return written
