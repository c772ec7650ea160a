"""From valid-topic records to what the engine applies and stores.

A valid record's value is the validator's normalized event (JSON), its timestamp the event
time (ms) and its ``rtml.event_id`` header the event id. One batch is decoded with one
msgspec call, into

* an :class:`~rtml.core.aggregation.EventBatch` holding only the columns the views read
  (their join keys, aggregated columns and ``where`` columns), and
* the :class:`~rtml.backends.offline_store.StoredEvent` rows of the offline store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from rtml.backends.event_log.base import LogRecord
from rtml.backends.offline_store import StoredEvent
from rtml.core.aggregation import EventBatch
from rtml.definitions.feature_view import FeatureView
from rtml.definitions.source import Source
from rtml.errors import RtmlError
from rtml.timeutil import parse_timestamp, to_millis

_decoder = msgspec.json.Decoder(list[dict[str, Any]])


def view_columns(views: Sequence[FeatureView]) -> tuple[str, ...]:
    """Every event column the views read: join keys, aggregated and ``where`` columns."""
    names: set[str] = set()
    for view in views:
        names.update(view.join_keys)
        for agg in view.aggregations:
            if agg.column is not None:
                names.add(agg.column)
            where = agg.where_expression
            if where is not None:
                names.update(where.columns)
    return tuple(sorted(names))


@dataclass(frozen=True)
class Decoded:
    batch: EventBatch
    events: list[StoredEvent]
    ts_ms: np.ndarray  # event times, in log order
    partitions: np.ndarray  # the records' partitions, in log order


class BatchDecoder:
    """Decodes valid records of ``source`` for ``views``."""

    def __init__(self, source: Source, views: Sequence[FeatureView]) -> None:
        self.id_field = source.id_field
        self.timestamp_field = source.timestamp_field
        self.columns = view_columns(views)

    def decode(self, records: Sequence[LogRecord]) -> Decoded:
        try:
            rows = _decoder.decode(b"[" + b",".join(r.value for r in records) + b"]")
        except msgspec.DecodeError as exc:
            raise RtmlError(
                f"a record of the valid topic is not a JSON object ({exc}); the valid topic holds "
                "only what the validator wrote. Fix: check what else produces to it"
            ) from None
        if len(rows) != len(records):
            raise RtmlError("decoding the valid records gave another number of events")
        stamps = [r.timestamp_ms for r in records]
        ts: list[int] = (
            [self._event_time(row) if t is None else t for t, row in zip(stamps, rows, strict=True)]
            if None in stamps
            else stamps  # type: ignore[assignment]
        )
        id_field = self.id_field
        raw_ids = [row.get(id_field) for row in rows]
        ids: list[str] = (
            raw_ids  # type: ignore[assignment]
            if all(type(i) is str for i in raw_ids)
            else [i if isinstance(i, str) else str(i) for i in raw_ids]
        )
        batch = EventBatch.from_columns(
            np.asarray(ts, dtype=np.int64), ids, {c: [row.get(c) for row in rows] for c in self.columns}
        )
        events = list(map(StoredEvent, ids, ts, rows))
        partitions = np.fromiter((r.partition for r in records), dtype=np.int64, count=len(records))
        return Decoded(batch, events, batch.ts_ms, partitions)

    def _event_time(self, row: dict[str, Any]) -> int:
        return to_millis(parse_timestamp(str(row.get(self.timestamp_field))))
