"""Per-feature statistics of the training split and the PSI."""

from __future__ import annotations

import numpy as np
import pytest

from rtml.core.training.stats import bin_edges, bin_shares, feature_stats, psi


def test_stats_of_a_column_with_nulls() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=1000), rng.poisson(0.3, size=1000).astype(float)])
    x[:100, 0] = np.nan
    first, counts = feature_stats(x, ["a", "b"])
    assert (first.name, first.count, first.nulls) == ("a", 900, 100)
    assert first.mean == pytest.approx(np.nanmean(x[:, 0])) and first.std == pytest.approx(np.nanstd(x[:, 0]))
    assert first.min == np.nanmin(x[:, 0]) and first.max == np.nanmax(x[:, 0])
    assert len(first.edges) == 11 and len(first.shares) == 10
    assert all(s == pytest.approx(0.1, abs=0.002) for s in first.shares)  # deciles
    assert sum(counts.shares) == pytest.approx(1.0)
    assert len(counts.edges) < 11  # a mostly-zero count collapses equal quantiles
    assert counts.shares[0] == pytest.approx(np.mean(x[:, 1] == 0), abs=1e-12)


def test_constant_and_empty_columns() -> None:
    x = np.column_stack([np.full(10, 3.0), np.full(10, np.nan)])
    constant, empty = feature_stats(x, ["c", "e"])
    assert constant.edges == [3.0, 3.0] and constant.shares == [1.0]
    assert empty.edges == [] and empty.shares == [] and empty.mean is None and empty.nulls == 10


def test_values_outside_the_edges_go_to_the_outer_bins() -> None:
    edges = bin_edges(np.arange(100, dtype=float), bins=4)
    assert bin_shares(np.array([-50.0, 1000.0, np.nan]), edges) == [0.5, 0.0, 0.0, 0.5]


def test_psi() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=20_000)
    edges = bin_edges(train)
    expected = bin_shares(train, edges)
    same = bin_shares(rng.normal(size=20_000), edges)
    shifted = bin_shares(rng.normal(loc=1.0, size=20_000), edges)
    assert psi(expected, expected) == 0.0
    assert psi(expected, same) < 0.01
    assert psi(expected, shifted) > 0.25
    assert np.isfinite(psi([0.5, 0.5], [1.0, 0.0]))  # an empty bin does not make it infinite
    with pytest.raises(ValueError):
        psi([1.0], [0.5, 0.5])
