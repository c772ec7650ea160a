"""Per-feature statistics of the training split, and the population stability index (PSI).

Each feature's bin edges are quantiles (deciles by default) of its non-missing training
values, duplicates removed, so a count feature that is mostly 0 gets fewer, wider bins.
The outer edges are the training minimum and maximum; :func:`bin_shares` puts values
beyond them in the first or last bin, so serving values are binned with the same edges.
Shares are over non-missing values; the missing count is kept beside them.

``psi(expected, actual) = sum_b (a_b - e_b) * ln(a_b / e_b)``, shares floored at 1e-4 so an
empty bin does not make it infinite. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate
shift, > 0.25 a large shift.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rtml.core.training.report import FeatureStats

DEFAULT_BINS = 10
PSI_FLOOR = 1e-4


def bin_edges(values: np.ndarray, bins: int = DEFAULT_BINS) -> list[float]:
    """Quantile edges of the non-missing ``values`` (at least 2 when there is a value)."""
    present = values[~np.isnan(values)]
    if present.size == 0:
        return []
    edges = np.unique(np.quantile(present.astype(np.float64), np.linspace(0.0, 1.0, bins + 1)))
    if edges.size == 1:  # a constant feature: one bin holding every value
        edges = np.array([edges[0], edges[0]])
    return [float(e) for e in edges]


def bin_shares(values: np.ndarray, edges: Sequence[float]) -> list[float]:
    """Share of the non-missing ``values`` in each bin of ``edges`` (``len(edges) - 1`` bins).

    Bin ``b`` holds ``edges[b] <= v < edges[b + 1]``; the last bin includes its upper edge;
    values outside the edges go to the first or last bin."""
    k = len(edges) - 1
    if k < 1:
        return []
    present = np.asarray(values, dtype=np.float64)
    present = present[~np.isnan(present)]
    if present.size == 0:
        return [0.0] * k
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    ids = np.searchsorted(inner, present, side="right")
    counts = np.bincount(ids, minlength=k)
    return [float(c) for c in counts / present.size]


def feature_stats(x: np.ndarray, names: Sequence[str], bins: int = DEFAULT_BINS) -> list[FeatureStats]:
    """Statistics of each column of ``x`` (NaN = missing), named by ``names``."""
    stats = []
    for j, name in enumerate(names):
        column = np.asarray(x[:, j], dtype=np.float64)
        present = column[~np.isnan(column)]
        edges = bin_edges(column, bins)
        some = present.size > 0
        stats.append(
            FeatureStats(
                name=name,
                count=int(present.size),
                nulls=int(column.size - present.size),
                mean=float(present.mean()) if some else None,
                std=float(present.std()) if some else None,
                min=float(present.min()) if some else None,
                max=float(present.max()) if some else None,
                edges=edges,
                shares=bin_shares(column, edges),
            )
        )
    return stats


def psi(expected: Sequence[float], actual: Sequence[float], floor: float = PSI_FLOOR) -> float:
    """Population stability index between two share vectors over the same bins."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} expected shares against {len(actual)} actual ones")
    if not len(expected):
        return 0.0
    e = np.maximum(np.asarray(expected, dtype=np.float64), floor)
    a = np.maximum(np.asarray(actual, dtype=np.float64), floor)
    return float(np.sum((a - e) * np.log(a / e)))
