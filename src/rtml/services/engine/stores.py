"""The engine's two outputs: per-key state blobs online, valid events offline.

* :class:`OnlineWriter` -- writes the states of the keys a batch touched, one atomic
  ``OnlineStore.write`` per view, with an expiry of the view's longest window plus its hop
  (an older state holds nothing a read can use), the checkpoint riding on the last write;
* :class:`OfflineAppender` -- appends the valid events to the offline store from one
  background thread, ``offline_batch`` events at a time (large appends are far cheaper
  than one per poll), and :meth:`~OfflineAppender.drain` waits until all are stored: the
  engine drains before every checkpoint, so a checkpoint never covers an event the
  offline store lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from rtml.backends.offline_store import OfflineStore, StoredEvent
from rtml.backends.online_store import OnlineStore
from rtml.backends.online_store.factory import open_online_store
from rtml.core.aggregation import Aggregator, Applied, EventBatch, ViewPlan
from rtml.core.pit import EventTable
from rtml.project import Project
from rtml.services.engine.export import export_states

ENGINE_VIEW = "_engine"  # the view name a checkpoint is written under when no view has blobs
MAX_PENDING = 2  # background appends in flight before the engine waits for one


def open_online(project: Project) -> OnlineStore:
    """The project's configured online store (the caller closes it)."""
    return open_online_store(
        project.config.online_store, project=project.config.project, data_dir=project.data_dir
    )


def view_ttl_ms(plan: ViewPlan) -> int:
    """How long a key's state stays useful without a write: longest window plus its hop."""
    return max(a.longest + a.hop for a in plan.aggs)


def as_key(key: Any) -> tuple[Any, ...]:
    """A runtime key (a value, or a tuple for several join keys) as the store's tuple."""
    return key if isinstance(key, tuple) else (key,)


def touched_keys(
    aggregator: Aggregator, batch: EventBatch, applied: dict[str, Applied]
) -> dict[str, list[Any]]:
    """Per view, the keys whose state must be written after ``batch``: those it applied
    events to, and those of events it dropped as too old. The latter matters: a key's
    stored state claims to be exact from its ``covered_from`` on, and an event dropped
    after that state was written would belong to reads between then and now. Rewriting the
    state moves its ``covered_from`` up to where the drop changes nothing."""
    out: dict[str, list[Any]] = {}
    for name, result in applied.items():
        keys = result.keys
        if result.dropped:
            rt = aggregator[name]
            assert rt.retained_from is not None
            at = (batch.ts_ms < rt.retained_from).nonzero()[0]
            columns = [batch.col(k).take(at).python() for k in rt.join_keys]
            old = [v[0] if len(v) == 1 else tuple(v) for v in zip(*columns, strict=True)]
            keys = list(dict.fromkeys([*keys, *(k for k in old if k is not None and k == k)]))
        out[name] = keys
    return out


class OnlineWriter:
    """Writes state blobs; :meth:`add` collects the keys of batches to :meth:`flush` later
    (a key touched by several batches in between is exported and written once)."""

    def __init__(self, store: OnlineStore, aggregator: Aggregator) -> None:
        self.store = store
        self.aggregator = aggregator
        self.ttl = {name: view_ttl_ms(rt.plan) for name, rt in aggregator.views.items()}
        self._keys: dict[str, dict[Any, None]] = {name: {} for name in aggregator.views}
        self._times: list[np.ndarray] = []

    def add(self, touched: dict[str, list[Any]], ts_ms: np.ndarray) -> None:
        """Keys (view -> runtime keys) to write at the next flush, and their batch's event times."""
        for name, keys in touched.items():
            self._keys[name].update(dict.fromkeys(keys))
        self._times.append(ts_ms)

    def flush(self, checkpoint: tuple[str, bytes] | None = None) -> tuple[dict[str, int], np.ndarray]:
        """Write the collected keys' current states (and the checkpoint); returns the blobs
        written per view and the event times of the batches now visible."""
        written = self.write({name: list(keys) for name, keys in self._keys.items()}, checkpoint)
        times = np.concatenate(self._times) if self._times else np.zeros(0, dtype=np.int64)
        self._keys = {name: {} for name in self._keys}
        self._times = []
        return written, times

    def write(
        self, touched: dict[str, list[Any]], checkpoint: tuple[str, bytes] | None = None
    ) -> dict[str, int]:
        """Write the states of ``touched`` keys (view -> runtime keys); the checkpoint goes
        with the last view's blobs (or alone). Returns the blobs written per view."""
        written: dict[str, int] = {}
        todo = [(name, keys) for name, keys in touched.items() if keys]
        for i, (name, keys) in enumerate(todo):
            states = export_states(self.aggregator[name], keys)
            last = i == len(todo) - 1
            self.store.write(
                name,
                {as_key(k): blob for k, blob in states.items()},
                checkpoint=checkpoint if last else None,
                ttl_ms=self.ttl[name],
            )
            written[name] = len(states)
        if checkpoint is not None and not todo:
            self.store.write(next(iter(self.aggregator.views), ENGINE_VIEW), {}, checkpoint=checkpoint)
        return written


class OfflineAppender:
    """Appends events to ``table`` in the background, in order, ``batch`` at a time."""

    def __init__(self, store: OfflineStore, table: EventTable, batch: int) -> None:
        self.store = store
        self.table = table
        self.batch = batch
        self._buffer: list[StoredEvent] = []
        self._pending: list[Future[int]] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtml-engine-offline")
        self.appended = 0  # new rows stored so far

    def add(self, events: Sequence[StoredEvent]) -> None:
        self._buffer.extend(events)
        if len(self._buffer) >= self.batch:
            self._submit()
        self._collect(block=len(self._pending) > MAX_PENDING)

    def drain(self) -> None:
        """Return once every event added so far is stored (raising an append's error)."""
        self._submit()
        while self._pending:
            self._collect(block=True)

    def close(self) -> None:
        """Stop the thread; events still buffered are NOT stored (drain first)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self) -> None:
        if self._buffer:
            events, self._buffer = self._buffer, []
            self._pending.append(self._pool.submit(self.store.append, self.table, events))

    def _collect(self, *, block: bool) -> None:
        while self._pending and (block or self._pending[0].done()):
            self.appended += self._pending.pop(0).result()
            block = False
