"""The engine's two outputs: per-key state blobs online, valid events offline.

* :class:`OnlineWriter` -- writes the states of the keys a batch touched, one atomic
  ``OnlineStore.write`` per view, with an expiry of the view's longest window plus its hop
  (an older state holds nothing a read can use), the checkpoint riding on the last write.
  Incremental (the engine): a key's first write of the run is its full state; later ones
  append only what changed (``rtml.core.aggregation.delta``) until the appended frames
  outgrow the full state, which is then written again;
* :class:`OfflineAppender` -- appends the valid events to the offline store from one
  background thread, ``offline_batch`` events at a time (large appends are far cheaper
  than one per poll), and :meth:`~OfflineAppender.drain` waits until all are stored: the
  engine drains before every checkpoint, so a checkpoint never covers an event the
  offline store lacks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from rtml.backends.offline_store import OfflineStore, StoredEvent
from rtml.backends.online_store import OnlineStore
from rtml.backends.online_store.base import Append
from rtml.backends.online_store.factory import open_online_store
from rtml.core.aggregation import Aggregator, Applied, EventBatch, ViewPlan
from rtml.core.pit import EventTable
from rtml.project import Project
from rtml.services.engine.export import export_deltas, export_states

ENGINE_VIEW = "_engine"  # the view name a checkpoint is written under when no view has blobs
MAX_PENDING = 2  # background appends in flight before the engine waits for one
MIN_REWRITE = 4096  # bytes of appended deltas a key may carry at least before a full rewrite


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
    (a key touched by several batches in between is exported and written once).

    ``incremental``: the runtimes record their changes and a key written in full by this
    writer gets only its changes appended afterwards, while the appended bytes stay under
    the size of its full state (at least ``MIN_REWRITE``) and its last write is younger than
    half the view's expiry (so the stored blob cannot have expired in between). Only the
    engine's loop writes incrementally: it writes every key the runtimes changed at every
    flush, so no change is left out of a delta."""

    def __init__(self, store: OnlineStore, aggregator: Aggregator, *, incremental: bool = False) -> None:
        self.store = store
        self.aggregator = aggregator
        self.ttl = {name: view_ttl_ms(rt.plan) for name, rt in aggregator.views.items()}
        self._keys: dict[str, dict[Any, None]] = {name: {} for name in aggregator.views}
        self._times: list[np.ndarray] = []
        self.incremental = incremental
        # view -> key -> [last write (wall ms), bytes of its full state, bytes appended since]
        self._written: dict[str, dict[Any, list[int]]] = {name: {} for name in aggregator.views}
        self.deltas_written = 0  # appended deltas written so far
        self.bytes_written = 0  # bytes of full states and deltas written so far
        if incremental:
            for rt in aggregator.views.values():
                rt.track_changes()

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
        now = time.time_ns() // 1_000_000
        try:
            if len(todo) > 1:
                staged = [(name, self._stage(name, keys, now)) for name, keys in todo]
                self.store.write_many(
                    {name: (st[0], self.ttl[name]) for name, st in staged}, checkpoint=checkpoint
                )
                for name, (payload, states, deltas) in staged:
                    self._remember(name, states, deltas, now)
                    written[name] = len(payload)
                return written
            for i, (name, keys) in enumerate(todo):
                payload, states, deltas = self._stage(name, keys, now)
                last = i == len(todo) - 1
                self.store.write(
                    name, payload, checkpoint=checkpoint if last else None, ttl_ms=self.ttl[name]
                )
                self._remember(name, states, deltas, now)
                written[name] = len(payload)
            if checkpoint is not None and not todo:
                self.store.write(next(iter(self.aggregator.views), ENGINE_VIEW), {}, checkpoint=checkpoint)
        except BaseException:
            for known in self._written.values():  # the store may hold less than assumed
                known.clear()
            raise
        return written

    def _stage(
        self, name: str, keys: list[Any], now: int
    ) -> tuple[dict[tuple[Any, ...], bytes], dict[Any, bytes], dict[Any, bytes]]:
        """The payload of one view's write: full states, and deltas for the keys this writer
        wrote in full before (while their deltas stay small)."""
        rt = self.aggregator[name]
        known = self._written[name]
        deltas: dict[Any, bytes] = {}
        full_keys = keys
        if self.incremental and rt.changes is not None:
            taken = rt.changes.take()
            young = self.ttl[name] // 2
            appendable = [k for k in keys if k in known and now - known[k][0] < young]
            if appendable:
                deltas = export_deltas(rt, appendable, taken)
                for k, frame in list(deltas.items()):
                    seen = known[k]
                    if seen[2] + len(frame) > max(seen[1], MIN_REWRITE):
                        del deltas[k]
                full_keys = [k for k in keys if k not in deltas]
        states = export_states(rt, full_keys) if full_keys else {}
        payload: dict[tuple[Any, ...], bytes] = {as_key(k): blob for k, blob in states.items()}
        payload.update({as_key(k): Append(frame) for k, frame in deltas.items()})
        return payload, states, deltas

    def _remember(self, name: str, states: dict[Any, bytes], deltas: dict[Any, bytes], now: int) -> None:
        self.deltas_written += len(deltas)
        self.bytes_written += sum(map(len, states.values())) + sum(map(len, deltas.values()))
        if not self.incremental:
            return
        known = self._written[name]
        for k, blob in states.items():
            known[k] = [now, len(blob), 0]
        for k, frame in deltas.items():
            seen = known[k]
            seen[0] = now
            seen[2] += len(frame)


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
