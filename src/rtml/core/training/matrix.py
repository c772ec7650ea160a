"""A training set (``pyarrow.Table``) as numpy arrays: the feature matrix, labels, times, ids.

The feature matrix is float32 in the model's ``feature_names`` order, NaN where a value
is NULL (XGBoost's missing value). Integer, floating and boolean columns are accepted;
a text column is refused (XGBoost takes numbers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rtml.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

LABEL = "label"
EVENT_TIME = "event_time"
EVENT_ID = "event_id"
SPINE_ROW = "spine_row"


def feature_matrix(table: pa.Table, names: Sequence[str]) -> np.ndarray:
    """``(rows, len(names))`` float32, NaN for NULL."""
    matrix = np.empty((table.num_rows, len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        matrix[:, j] = column_values(table, name)
    return matrix


def column_values(table: pa.Table, name: str) -> np.ndarray:
    """One numeric column as float64 with NaN for NULL."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if name not in table.column_names:
        raise InvalidInputError(
            f"the training set has no column {name!r}. Fix: run `rtml apply` and rebuild the training set"
        )
    column = table.column(name)
    kind = column.type
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind):
        cast = pc.cast(column, pa.float64())
    elif pa.types.is_null(kind):
        return np.full(table.num_rows, np.nan)
    elif pa.types.is_decimal(kind):
        cast = pc.cast(column, pa.float64())
    else:
        raise InvalidInputError(
            f"feature {name!r} is of type {kind}, not a number; XGBoost takes numeric inputs. "
            "Fix: drop it from the model's features, or define a numeric feature instead"
        )
    return np.asarray(pc.fill_null(cast, np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)


def label_values(table: pa.Table) -> np.ndarray:
    """The ``label`` column as int8 0/1; a NULL label is refused."""
    if LABEL not in table.column_names:
        raise InvalidInputError("the training set has no label column. Fix: rebuild it with `rtml train`")
    column = table.column(LABEL)
    if column.null_count:
        raise InvalidInputError(
            f"{column.null_count} rows of the training set have no label yet (their horizon is not over). "
            "Fix: build the training set without include_incomplete"
        )
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int8)


def event_millis(table: pa.Table) -> np.ndarray:
    """The ``event_time`` column as int64 epoch milliseconds."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = table.column(EVENT_TIME)
    if pa.types.is_timestamp(column.type):
        column = pc.cast(pc.cast(column, pa.timestamp("ms", tz="UTC")), pa.int64())
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)


def row_ids(table: pa.Table) -> list[str]:
    """Each row's ``event_id`` (the label's prediction point), or its ``spine_row`` number."""
    name = EVENT_ID if EVENT_ID in table.column_names else SPINE_ROW
    return [str(v) for v in table.column(name).to_pylist()]


def dataset_sha256(table: pa.Table) -> str:
    """sha256 of the table's Arrow IPC stream bytes (one record batch: chunking does not matter)."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    combined = table.combine_chunks()
    with pa.ipc.new_stream(sink, combined.schema) as writer:
        writer.write_table(combined, max_chunksize=max(1, combined.num_rows))
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def input_example(x: np.ndarray, names: Sequence[str], rows: int = 5) -> list[dict[str, Any]]:
    """The first ``rows`` rows as ``{feature: value}`` (None for missing), for a model signature."""
    return [
        {name: None if np.isnan(v) else float(v) for name, v in zip(names, row, strict=True)}
        for row in x[:rows]
    ]
