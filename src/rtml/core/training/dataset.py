"""A model's training set made ready to fit: arrays, the time split and the windows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rtml.core.training.matrix import event_millis, feature_matrix, label_values, row_ids
from rtml.core.training.report import TimeWindow
from rtml.core.training.settings import TrainingSettings
from rtml.core.training.split import FIX_MORE_DATA, TimeSplit, split_by_time
from rtml.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class PreparedSet:
    feature_names: list[str]
    x: np.ndarray  # every row, float32, NaN = missing
    y: np.ndarray  # 0/1
    event_ms: np.ndarray
    ids: list[str]  # event_id (or spine_row) of each row
    split: TimeSplit

    def rows(self, which: str) -> np.ndarray:
        rows: np.ndarray = getattr(self.split, which)
        return rows

    def xy(self, which: str, columns: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The split's feature matrix (optionally some columns only) and labels."""
        rows = self.rows(which)
        x = self.x[rows] if columns is None else self.x[np.ix_(rows, np.asarray(columns, dtype=int))]
        return np.ascontiguousarray(x), self.y[rows]

    def window(self, which: str) -> TimeWindow:
        return self.split.window(which, self.event_ms, self.y)

    def ids_of(self, which: str) -> list[str]:
        return [self.ids[i] for i in self.rows(which)]


def prepare(
    table: pa.Table,
    feature_names: Sequence[str],
    settings: TrainingSettings,
    *,
    horizon_ms: int,
    what: str,
) -> PreparedSet:
    """Arrays of ``table`` and its time split (errors name ``what``, e.g. "the training set of M")."""
    if table.num_rows == 0:
        raise InvalidInputError(
            f"{what} is empty: no prediction points with a complete label horizon are stored. {FIX_MORE_DATA}"
        )
    y = label_values(table)
    event_ms = event_millis(table)
    split = split_by_time(
        event_ms,
        y,
        validation_fraction=settings.validation_fraction,
        test_fraction=settings.test_fraction,
        horizon_ms=horizon_ms,
        what=what,
    )
    names = list(feature_names)
    return PreparedSet(
        feature_names=names,
        x=feature_matrix(table, names),
        y=y,
        event_ms=event_ms,
        ids=row_ids(table),
        split=split,
    )
