"""The offline store port: every valid event of each source, and training sets over them.

One table per source (:class:`~rtml.core.pit.layout.EventTable`): the source's columns
typed from its schema, plus ``event_id`` and ``ts_ms`` (event time in ms). ``append`` is
idempotent by ``event_id``: an appender that crashed after writing and before committing
its input position appends the same events again and the store keeps one row of each.
(PostgreSQL checks ids over the whole table, by its primary key; DuckDB within
``dedupe_horizon`` -- 24 h, the validator's dedupe horizon -- of the batch's event times.)
Late events are stored like any other; the store never drops an event for its time.

``training_set`` runs the point-in-time query compiled from the definitions
(:mod:`rtml.core.pit`) in the backend's SQL dialect and returns an Arrow table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rtml.errors import RtmlError

if TYPE_CHECKING:
    import pyarrow as pa

    from rtml.core.pit.layout import EventTable
    from rtml.core.pit.plan import TrainingSetPlan

Progress = Callable[[float], None]  # called with the share done, 0.0 .. 1.0


class OfflineStoreError(RtmlError):
    """The store refused or failed an operation (not a connection problem)."""

    http_status = 500


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One valid event: its id, its event time (ms since the epoch, UTC) and its fields
    (the validator's normalized event, decoded: a timestamp field as an ISO-8601 string)."""

    event_id: str
    ts_ms: int
    row: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SourceStats:
    """What a source's table holds, for lineage: rows and the event-time range (ms)."""

    source: str
    rows: int
    first_ts_ms: int | None
    last_ts_ms: int | None


@runtime_checkable
class OfflineStore(Protocol):
    """Valid events by source, and point-in-time training sets over them."""

    dialect: str  # the SQL dialect of the generated queries: "duckdb" | "postgres"

    def append(self, table: EventTable, events: Sequence[StoredEvent]) -> int:
        """Store ``events`` (creating the table on first use); return how many were new.
        An event whose ``event_id`` is already stored (see above), or repeated in
        ``events``, is kept once (the first copy)."""
        ...

    def read(self, table: EventTable, *, start_ms: int | None = None, end_ms: int | None = None) -> pa.Table:
        """The stored events with ``start_ms <= ts_ms < end_ms``, ordered by (ts_ms, event_id)."""
        ...

    def stats(self, table: EventTable) -> SourceStats:
        """Row count and event-time range of a source (zero rows if never appended to)."""
        ...

    def training_set(
        self,
        plan: TrainingSetPlan,
        *,
        spine: pa.Table | None = None,
        include_incomplete: bool = False,
        progress: Progress | None = None,
    ) -> pa.Table:
        """The training set of ``plan``: one row per spine row, features as of its time,
        the on-demand features and the label. ``spine`` None takes the label's
        prediction points; otherwise a table normalized by
        :func:`rtml.backends.offline_store.arrow.normalize_spine`. Rows whose label
        horizon is not complete yet are dropped, or kept with a NULL label when
        ``include_incomplete``."""
        ...

    def close(self) -> None: ...


__all__ = ["OfflineStore", "OfflineStoreError", "Progress", "SourceStats", "StoredEvent"]
