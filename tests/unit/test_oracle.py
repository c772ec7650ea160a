"""The oracle itself, on hand-computed cases (it is the spec the backends are held to)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rtml.definitions import Aggregation, Entity, FeatureView, Source
from rtml.testing.oracle import OracleEvent, feature_value, view_values, window_start

MIN = 60_000
HOUR = 60 * MIN


def _view(*aggs: Aggregation) -> FeatureView:
    user = Entity(name="user", join_keys=["user_id"])
    source = Source(name="events", schema="event.json")
    return FeatureView(name="v", entities=[user], source=source, aggregations=list(aggs))


def _ev(
    minute: float, value: float | None = 1.0, kind: str = "view", eid: str = "", user: int = 1
) -> OracleEvent:
    return OracleEvent(
        ts_ms=int(minute * MIN),
        event_id=eid or f"e{minute}",
        row={"user_id": user, "price": value, "event_type": kind},
    )


def test_window_start_is_hop_aligned() -> None:
    assert window_start(90 * MIN + 5, timedelta(hours=1), timedelta(minutes=1)) == 30 * MIN
    assert window_start(90 * MIN, timedelta(hours=1), timedelta(minutes=15)) == 30 * MIN
    assert window_start(89 * MIN, timedelta(hours=1), timedelta(minutes=15)) == 15 * MIN


@pytest.mark.parametrize(
    ("function", "column", "expected"),
    [("count", None, 3), ("sum", "price", 6.0), ("mean", "price", 2.0), ("min", "price", 1.0),
     ("max", "price", 3.0), ("last", "price", 3.0), ("count_distinct", "price", 3)],
)  # fmt: skip
def test_head_is_exact_and_strictly_before_t(function: str, column: str | None, expected: float) -> None:
    view = _view(Aggregation(function=function, column=column, windows=["1h"], hop="1m"))  # type: ignore[arg-type]
    feature = view.features[0]
    events = [_ev(10, 1.0), _ev(20, 2.0), _ev(30, 3.0), _ev(40, 100.0)]
    assert feature_value(feature, events, 40 * MIN) == expected  # the event at t is excluded


def test_tail_includes_the_partial_hop() -> None:
    view = _view(Aggregation(function="count", windows=["1h"], hop="15m"))
    feature = view.features[0]
    events = [_ev(14.99), _ev(15), _ev(16), _ev(74)]
    # t = 75.5 min: start = floor(15.5 min, 15 min) = 15 min
    assert feature_value(feature, events, int(75.5 * MIN)) == 3


def test_where_filter_and_empty_defaults() -> None:
    view = _view(
        Aggregation(function="count", windows=["1h"], where="event_type = 'cart'", name="carts"),
        Aggregation(
            function="sum", column="price", windows=["1h"], where="event_type = 'cart'", name="spent"
        ),
        Aggregation(function="mean", column="price", windows=["1h"], where="event_type = 'cart'", name="avg"),
    )
    values = view_values(view, [_ev(1, kind="view"), _ev(2, kind="view")], {"user_id": 1}, 10 * MIN)
    assert values == {"carts_1h": 0, "spent_1h": 0, "avg_1h": None}


def test_nulls_are_ignored_and_last_breaks_ties_by_event_id() -> None:
    view = _view(
        Aggregation(function="mean", column="price", windows=["1h"]),
        Aggregation(function="count", column="price", windows=["1h"]),
        Aggregation(function="last", column="price", windows=["1h"]),
    )
    events = [_ev(5, None, eid="a"), _ev(6, 4.0, eid="b"), _ev(6, 8.0, eid="c")]
    assert view_values(view, events, {"user_id": 1}, 7 * MIN) == {
        "mean_price_1h": 6.0,
        "count_price_1h": 2,
        "last_price_1h": 8.0,
    }


def test_other_keys_do_not_count() -> None:
    view = _view(Aggregation(function="count", windows=["1h"]))
    assert view_values(view, [_ev(1, user=1), _ev(2, user=2)], {"user_id": 2}, HOUR) == {"count_1h": 1}
