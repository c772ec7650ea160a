"""The time split: three disjoint splits in time order, at least a label horizon apart."""

from __future__ import annotations

import numpy as np
import pytest

from rtml.core.training.split import split_by_time
from rtml.errors import InvalidInputError

HOUR = 3_600_000


def _points(n: int, seed: int = 0, span_hours: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = rng.integers(0, int(span_hours * HOUR), size=n)
    times[: n // 10] = times[n // 10]  # ties across a boundary are allowed to happen
    labels = (rng.random(n) < 0.3).astype(np.int8)
    return times, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("horizon", [0, HOUR, 6 * HOUR])
def test_splits_are_disjoint_ordered_and_a_horizon_apart(seed: int, horizon: int) -> None:
    times, labels = _points(3000, seed)
    split = split_by_time(times, labels, validation_fraction=0.15, test_fraction=0.2, horizon_ms=horizon)
    train, valid, test = split.train, split.validation, split.test
    assert not (set(train) & set(valid)) and not (set(valid) & set(test)) and not (set(train) & set(test))
    assert len(train) + len(valid) + len(test) + split.dropped == len(times)
    # every label window (t, t + h] of an earlier split ends before the next split's first point
    assert times[train].max() + horizon < times[valid].min()
    assert times[valid].max() + horizon < times[test].min()
    # the gap really is empty: no kept point lies within h before the next split
    kept = np.concatenate([train, valid, test])
    for first in (times[valid].min(), times[test].min()):
        in_gap = (times[kept] >= first - horizon) & (times[kept] < first)
        assert not in_gap.any()
    # test is the last test_fraction of the points, whole
    assert len(test) == int(np.ceil(0.2 * len(times)))
    assert times[test].min() >= np.sort(times)[len(times) - len(test) - 1]
    # each split is listed in time order
    for rows in (train, valid, test):
        assert np.all(np.diff(times[rows]) >= 0)


def test_points_in_the_gap_are_dropped_not_moved() -> None:
    # 100 points one minute apart; horizon 10 minutes: 10 points before each boundary go.
    times = np.arange(100) * 60_000
    labels = np.tile([0, 1], 50)
    split = split_by_time(times, labels, validation_fraction=0.2, test_fraction=0.2, horizon_ms=600_000)
    assert list(split.test) == list(range(80, 100))
    assert list(split.validation) == list(range(60, 70))  # 70..79 are within 10 min of point 80
    assert list(split.train) == list(range(0, 50))  # 50..59 are within 10 min of point 60
    assert split.dropped == 20
    window = split.window("validation", times, labels)
    assert (window.start_ms, window.end_ms, window.rows, window.positives) == (
        60 * 60_000,
        69 * 60_000,
        10,
        5,
    )


def test_an_empty_set_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="is empty.*Fix: generate/replay more events"):
        split_by_time(
            np.array([], dtype=np.int64),
            np.array([]),
            validation_fraction=0.1,
            test_fraction=0.1,
            horizon_ms=HOUR,
        )


@pytest.mark.parametrize("value", [0, 1])
def test_one_class_is_refused(value: int) -> None:
    times, _ = _points(500)
    with pytest.raises(InvalidInputError, match="one class only"):
        split_by_time(times, np.full(500, value), validation_fraction=0.1, test_fraction=0.1, horizon_ms=HOUR)


def test_a_split_with_one_class_is_refused() -> None:
    times = np.arange(1000) * 60_000
    labels = np.zeros(1000, dtype=np.int8)
    labels[:800:2] = 1  # no positive in the last 200 points: the test split has none
    with pytest.raises(
        InvalidInputError, match="the test split .* one class only.*lower training.test_fraction"
    ):
        split_by_time(times, labels, validation_fraction=0.1, test_fraction=0.2, horizon_ms=60_000)


def test_a_horizon_longer_than_a_split_leaves_it_empty() -> None:
    # 140 hourly points, then 30 points a minute apart (validation) right before 30 more (test):
    # with a 2 h horizon every validation point is within 2 h of the test split's first point.
    times = np.concatenate([np.arange(140) * HOUR, 140 * HOUR + np.arange(60) * 60_000])
    labels = np.tile([0, 1], 100)
    with pytest.raises(InvalidInputError, match="the validation split .* has no rows .*label horizon .2 h"):
        split_by_time(times, labels, validation_fraction=0.15, test_fraction=0.15, horizon_ms=2 * HOUR)


def test_too_few_rows_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="too few to split"):
        split_by_time(
            np.array([1, 2]), np.array([0, 1]), validation_fraction=0.2, test_fraction=0.2, horizon_ms=0
        )
