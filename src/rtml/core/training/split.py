"""Split prediction points by time into train / validation / test, with a label-horizon gap.

Points are ordered by event time. The last ``test_fraction`` of them is the test split,
the ``validation_fraction`` before it the validation split, the rest the training split.
A point at time ``t`` has its label from events in ``(t, t + horizon]``; it is kept in
its split only if ``t + horizon < T``, where ``T`` is the event time of the next split's
first point. So no label window of an earlier split reaches the time of a later split's
first point, and the gap between two splits is at least ``horizon`` long::

    train ........ | gap >= h | validation .... | gap >= h | test ........
                   ^ dropped    T_valid           ^ dropped  T_test

Points sharing the first point's time of the next split fall in the gap too (``t = T``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rtml.core.training.report import TimeWindow
from rtml.errors import InvalidInputError

FIX_MORE_DATA = "Fix: generate/replay more events, or lower training.test_fraction"


@dataclass(frozen=True)
class TimeSplit:
    """Row indices (into the training set, each in time order) of the three splits."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    gap_ms: int
    dropped: int  # points that fell into a gap

    def window(self, which: str, event_ms: np.ndarray, labels: np.ndarray) -> TimeWindow:
        rows = getattr(self, which)
        times = event_ms[rows]
        return TimeWindow(
            start_ms=int(times.min()),
            end_ms=int(times.max()),
            rows=len(rows),
            positives=int(labels[rows].sum()),
        )


def split_by_time(
    event_ms: np.ndarray,
    labels: np.ndarray,
    *,
    validation_fraction: float,
    test_fraction: float,
    horizon_ms: int,
    what: str = "the training set",
) -> TimeSplit:
    """Split points (event times in ms, 0/1 labels) by time; see the module docstring.

    Raises :class:`InvalidInputError` when there are no points, or when a split ends up
    with no rows or with one class only (a model cannot be fit or evaluated on it)."""
    times = np.asarray(event_ms, dtype=np.int64)
    y = np.asarray(labels)
    n = len(times)
    if n == 0:
        raise InvalidInputError(f"{what} is empty: there are no prediction points. {FIX_MORE_DATA}")
    if len(y) != n:
        raise ValueError(f"{len(y)} labels for {n} event times")
    if horizon_ms < 0:
        raise ValueError(f"horizon_ms must be >= 0, got {horizon_ms}")
    if not (0 < validation_fraction and 0 < test_fraction and validation_fraction + test_fraction < 1):
        raise InvalidInputError(
            f"validation_fraction {validation_fraction} and test_fraction {test_fraction} leave no "
            "training rows. Fix: make both positive with a sum below 1"
        )
    _check_classes(y, what)
    order = np.argsort(times, kind="stable")
    n_test = max(1, math.ceil(n * test_fraction))
    n_valid = max(1, math.ceil(n * validation_fraction))
    n_train = n - n_test - n_valid
    if n_train < 1:
        raise InvalidInputError(f"{what} has only {n} rows, too few to split in three. {FIX_MORE_DATA}")
    test = order[n - n_test :]
    t_test = int(times[test[0]])
    validation = order[n_train : n - n_test]
    t_valid = int(times[validation[0]])
    validation = validation[times[validation] + horizon_ms < t_test]
    train = order[:n_train]
    train = train[times[train] + horizon_ms < t_valid]
    split = TimeSplit(
        train=train,
        validation=validation,
        test=test,
        gap_ms=int(horizon_ms),
        dropped=n - len(train) - len(validation) - len(test),
    )
    for name in ("train", "validation", "test"):
        rows = getattr(split, name)
        if len(rows) == 0:
            raise InvalidInputError(
                f"the {name} split of {what} has no rows once the label horizon "
                f"({horizon_ms / 3_600_000:g} h) is left out between splits ({n} points in all). "
                f"{FIX_MORE_DATA}"
            )
        _check_classes(y[rows], f"the {name} split of {what}")
    return split


def _check_classes(y: np.ndarray, what: str) -> None:
    positives = int(np.count_nonzero(y))
    if positives == 0 or positives == len(y):
        only = "positive" if positives else "negative"
        raise InvalidInputError(
            f"{what} has one class only: all {len(y)} labels are {only}; a classifier needs both. "
            f"{FIX_MORE_DATA}"
        )
