"""``Deduper``: drops events whose id was already seen within a horizon of event time.

Memory is bounded two ways: an id is forgotten once the newest event time seen is more
than ``horizon`` past its own event time, and at most ``max_ids`` ids are kept (the
oldest go first). Ids live in time buckets of ``horizon / 64``, so forgetting is a
whole-bucket operation and an id is remembered for at least ``horizon``.

Its state is a plain JSON-able dict (:meth:`snapshot` / :meth:`restore`), saved with the
consumer offsets at a checkpoint so that a restarted validator drops the same duplicates.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from rtml.errors import InvalidInputError
from rtml.timeutil import parse_duration

_BUCKETS_PER_HORIZON = 64
_SNAPSHOT_VERSION = 1


class Deduper:
    """``is_duplicate(event_id, event_time_ms)``: True for an id seen within the horizon.

    An event more than ``horizon`` behind the newest event time seen is not remembered
    (its duplicates would be forgotten before they could be caught anyway).
    """

    def __init__(self, *, horizon: str | timedelta = "1h", max_ids: int = 1_000_000) -> None:
        self.horizon = parse_duration(horizon)
        self.horizon_ms = self.horizon // timedelta(milliseconds=1)
        if self.horizon_ms < 1 or max_ids < 1:
            raise InvalidInputError(f"dedupe horizon {horizon!r} and max_ids {max_ids} must both be positive")
        self.max_ids = max_ids
        self._width = max(1, self.horizon_ms // _BUCKETS_PER_HORIZON)
        self._seen: dict[str, int] = {}  # id -> its bucket
        self._buckets: dict[int, list[str]] = {}
        self._order: list[int] = []  # heap of the bucket keys in use
        self.newest_ms: int | None = None
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._seen

    def is_duplicate(self, event_id: str, event_time_ms: int) -> bool:
        """True when ``event_id`` was seen within the horizon; otherwise remember it."""
        if event_id in self._seen:
            self.duplicates += 1
            return True
        newest = self.newest_ms
        if newest is None or event_time_ms > newest:
            self.newest_ms = newest = event_time_ms
            self._forget_before(newest - self.horizon_ms)
        elif event_time_ms < newest - self.horizon_ms:
            return False
        key = event_time_ms // self._width
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = []
            heapq.heappush(self._order, key)
        bucket.append(event_id)
        self._seen[event_id] = key
        if len(self._seen) > self.max_ids:
            self._drop_oldest_bucket()
        return False

    def _forget_before(self, cutoff_ms: int) -> None:
        """Forget every bucket whose events are all older than ``cutoff_ms``."""
        order, width = self._order, self._width
        while order and (order[0] + 1) * width <= cutoff_ms:
            self._drop_oldest_bucket()

    def _drop_oldest_bucket(self) -> None:
        key = heapq.heappop(self._order)
        for event_id in self._buckets.pop(key):
            del self._seen[event_id]

    def snapshot(self) -> dict[str, Any]:
        """The state, as JSON-able types."""
        return {
            "version": _SNAPSHOT_VERSION,
            "horizon_ms": self.horizon_ms,
            "max_ids": self.max_ids,
            "newest_ms": self.newest_ms,
            "duplicates": self.duplicates,
            "buckets": {str(k): list(v) for k, v in sorted(self._buckets.items())},
        }

    @classmethod
    def restore(cls, state: Mapping[str, Any]) -> Deduper:
        """The deduper a :meth:`snapshot` was taken of."""
        if state.get("version") != _SNAPSHOT_VERSION:
            raise InvalidInputError(
                f"dedupe snapshot version {state.get('version')!r} is not {_SNAPSHOT_VERSION}; "
                "start from an empty deduper or from a checkpoint of this rtml version"
            )
        deduper = cls(horizon=timedelta(milliseconds=state["horizon_ms"]), max_ids=state["max_ids"])
        deduper.newest_ms = state["newest_ms"]
        deduper.duplicates = state["duplicates"]
        for key_text, ids in state["buckets"].items():
            key = int(key_text)
            deduper._buckets[key] = list(ids)
            deduper._order.append(key)
            deduper._seen.update(dict.fromkeys(ids, key))
        heapq.heapify(deduper._order)
        return deduper
