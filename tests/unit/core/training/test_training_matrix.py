"""A pyarrow training set as arrays: order, NULL as NaN, refusals; the dataset hash."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from rtml.core.training.matrix import dataset_sha256, event_millis, feature_matrix, label_values, row_ids
from rtml.errors import InvalidInputError


def _table() -> pa.Table:
    return pa.table(
        {
            "event_id": ["a", "b", "c"],
            "event_time": pa.array(
                [datetime(2019, 10, 1, tzinfo=UTC), datetime(2019, 10, 2, tzinfo=UTC), None],
                pa.timestamp("ms", tz="UTC"),
            ),
            "n": pa.array([1, None, 3], pa.int64()),
            "f": pa.array([0.5, 1.5, None], pa.float64()),
            "flag": pa.array([True, False, None]),
            "text": ["x", "y", "z"],
            "label": pa.array([0, 1, 0], pa.int64()),
        }
    )


def test_matrix_in_the_given_order_with_nan_for_null() -> None:
    x = feature_matrix(_table(), ["f", "n", "flag"])
    assert x.dtype == np.float32 and x.shape == (3, 3)
    np.testing.assert_array_equal(x[:, 1], np.array([1, np.nan, 3], dtype=np.float32))
    np.testing.assert_array_equal(x[:, 0], np.array([0.5, 1.5, np.nan], dtype=np.float32))
    np.testing.assert_array_equal(x[:, 2], np.array([1, 0, np.nan], dtype=np.float32))


def test_text_missing_columns_and_null_labels_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="'text' is of type string"):
        feature_matrix(_table(), ["text"])
    with pytest.raises(InvalidInputError, match="no column 'nope'"):
        feature_matrix(_table(), ["nope"])
    table = _table().set_column(6, "label", pa.array([0, None, 1], pa.int64()))
    with pytest.raises(InvalidInputError, match="1 rows of the training set have no label"):
        label_values(table)


def test_labels_times_and_ids() -> None:
    table = _table()
    assert list(label_values(table)) == [0, 1, 0]
    assert list(event_millis(table.slice(0, 2))) == [1569888000000, 1569974400000]
    assert row_ids(table) == ["a", "b", "c"]
    assert row_ids(pa.table({"spine_row": [4, 5]})) == ["4", "5"]


def test_the_hash_follows_the_content_not_the_chunking() -> None:
    table = _table()
    chunked = pa.concat_tables([table.slice(0, 1), table.slice(1)])
    assert chunked.column(0).num_chunks == 2
    assert dataset_sha256(table) == dataset_sha256(chunked)
    changed = table.set_column(6, "label", pa.array([1, 1, 0], pa.int64()))
    assert dataset_sha256(changed) != dataset_sha256(table)
