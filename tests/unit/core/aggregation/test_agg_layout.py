"""Levels, the decomposition of a window into tiles, coverage and retention."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from agg_cases import DAY, HOUR, MIN, SEC, every_function_view, view

from rtml.core.aggregation.layout import decompose, level_sizes, plan_view
from rtml.definitions import Aggregation


@pytest.mark.parametrize(
    ("hops", "longest", "expected"),
    [
        ([MIN], 10 * MIN, (MIN,)),
        ([MIN, HOUR], 30 * DAY, (MIN, HOUR, DAY)),
        ([MIN], DAY, (MIN, HOUR)),  # a day level would hold no whole window of 1 day
        ([HOUR], 7 * DAY, (HOUR, DAY)),
        ([5 * MIN, 15 * MIN], DAY, (5 * MIN, HOUR)),
        ([7 * MIN], 30 * DAY, (7 * MIN, 112 * MIN, 1792 * MIN)),  # no calendar size fits: x16 steps
        ([SEC * 10], HOUR, (10 * SEC, MIN)),
    ],
)
def test_level_sizes(hops: list[int], longest: int, expected: tuple[int, ...]) -> None:
    assert level_sizes(hops, longest) == expected


@pytest.mark.parametrize(
    ("start", "end", "sizes", "expected"),
    [
        (0, 0, (MIN, HOUR), []),
        (0, 5 * MIN, (MIN, HOUR), [(0, 0, 5)]),
        (0, 2 * HOUR + 3 * MIN, (MIN, HOUR), [(1, 0, 2), (0, 120, 123)]),
        (50 * MIN, 2 * HOUR, (MIN, HOUR), [(0, 50, 60), (1, 1, 2)]),
        (HOUR, 3 * DAY + HOUR + MIN, (MIN, HOUR, DAY), [(1, 1, 24), (2, 1, 3), (1, 72, 73), (0, 4380, 4381)]),
    ],
)
def test_decompose_table(
    start: int, end: int, sizes: tuple[int, ...], expected: list[tuple[int, int, int]]
) -> None:
    assert decompose(start, end, sizes) == expected


def test_decompose_tiles_the_range_exactly_and_aligned() -> None:
    rng = random.Random(5)
    sizes = (MIN, HOUR, DAY)
    for _ in range(500):
        start = rng.randrange(0, 40 * DAY // MIN) * MIN
        end = start + rng.randrange(0, 40 * DAY // MIN) * MIN
        pieces = decompose(start, end, sizes)
        covered = [(first * sizes[lv], last * sizes[lv]) for lv, first, last in pieces]
        assert all(a < b for a, b in covered)
        assert [a for a, _ in covered] == sorted(a for a, _ in covered)
        if covered:
            assert covered[0][0] == start and covered[-1][1] == end
            assert all(covered[i][1] == covered[i + 1][0] for i in range(len(covered) - 1))
        # the fewest tiles: at most 2 * (fanout - 1) per level below the top
        assert sum(last - first for lv, first, last in pieces if lv == 0) <= 2 * 59
        assert sum(last - first for lv, first, last in pieces if lv == 1) <= 2 * 23


def test_plan_of_the_every_function_view() -> None:
    plan = plan_view(every_function_view())
    assert plan.sizes == (MIN, HOUR, DAY)
    levels = {a.aggregation.name: a.levels for a in plan.aggs}
    assert levels["n"] == 2  # windows up to 1 day: minutes and hours
    assert levels["n_price"] == 3  # 30 days: up to days
    assert levels["products"] == 2
    assert plan.columns == ("event_type", "price", "product_id", "qty")
    assert plan.has_last


def test_coverage_and_retention() -> None:
    v = view(
        Aggregation(function="count", windows=["10m", "1d"], hop="1m", name="a"),
        Aggregation(function="count", windows=["30d"], hop="1h", name="b"),
    )
    plan = plan_view(v, exact_for=timedelta(minutes=10))
    high = 100 * DAY + 5 * HOUR + 17 * MIN + 1234
    covered = plan.covered_from(high)
    assert covered == 100 * DAY + 5 * HOUR + 7 * MIN
    assert plan.retained_from(covered) == 70 * DAY + 5 * HOUR  # floor(covered - 30d, 1h)
    # minutes: "a" reads its 1-day tail in minutes; "b" (hop 1h) reads minutes only at the head
    assert plan.level_retained_from(covered) == (
        99 * DAY + 5 * HOUR + 7 * MIN,
        70 * DAY + 5 * HOUR,
        70 * DAY + 5 * HOUR,
    )


def test_covered_reads_never_touch_evictable_tiles() -> None:
    plan = plan_view(every_function_view(), exact_for=timedelta(minutes=10))
    rng = random.Random(1)
    for _ in range(300):
        covered = rng.randrange(40 * DAY, 60 * DAY) // MIN * MIN
        retained = plan.level_retained_from(covered)
        t = covered + rng.choice([0, 1, rng.randrange(0, 3 * DAY)])
        end = t // plan.base * plan.base
        for a in plan.aggs:
            for _, w in a.features:
                start = (t - w) // a.hop * a.hop
                for lv, first, _ in decompose(start, end, plan.sizes[: a.levels]):
                    assert first * plan.sizes[lv] >= retained[lv]
