"""Shared helpers of the aggregation tests: views with every function, hard-case event streams."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from rtml.core.aggregation import EventBatch
from rtml.definitions import Aggregation, Entity, FeatureView, Source
from rtml.testing.oracle import OracleEvent

SEC = 1_000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_569_888_000_000  # 2019-10-01T00:00:00Z, a multiple of every hop used

USER = Entity(name="user", join_keys=["user_id"])
PRODUCT = Entity(name="product", join_keys=["product_id"])
SOURCE = Source(name="events", schema="event.json")


def view(*aggs: Aggregation, name: str = "v", entities: Sequence[Entity] = (USER,)) -> FeatureView:
    return FeatureView(name=name, entities=list(entities), source=SOURCE, aggregations=list(aggs))


def every_function_view(name: str = "every", hop_short: str = "1m", hop_long: str = "1h") -> FeatureView:
    """Every function, with and without ``where``, short and long windows, two hops."""
    cart = "event_type = 'cart'"
    return view(
        Aggregation(function="count", windows=["5m", "1h", "1d"], hop=hop_short, name="n"),
        Aggregation(function="count", column="price", windows=["1h", "30d"], hop=hop_long, name="n_price"),
        Aggregation(function="count", windows=["10m", "7d"], where=cart, hop=hop_short, name="carts"),
        Aggregation(function="sum", column="qty", windows=["1h", "1d"], hop=hop_short, name="qty"),
        Aggregation(
            function="sum", column="price", windows=["2h", "7d"], hop=hop_long, where=cart, name="spent"
        ),
        Aggregation(function="mean", column="price", windows=["15m", "3d"], hop=hop_short, name="avg"),
        Aggregation(function="min", column="price", windows=["1h", "30d"], hop=hop_long, name="lo"),
        Aggregation(function="max", column="qty", windows=["5m", "1d"], hop=hop_short, name="hi"),
        Aggregation(function="last", column="price", windows=["1h", "7d"], hop=hop_short, name="last_price"),
        Aggregation(function="last", column="event_type", windows=["30d"], hop=hop_long, name="last_type"),
        Aggregation(
            function="count_distinct",
            column="product_id",
            windows=["1h", "1d"],
            hop=hop_short,
            name="products",
        ),
        Aggregation(
            function="count_distinct",
            column="event_type",
            windows=["2d"],
            where="qty > 1",
            hop=hop_long,
            name="kinds",
        ),
        name=name,
    )


def hard_events(seed: int, n: int = 3000, span_ms: int = 3 * DAY) -> list[dict[str, Any]]:
    """Rows with the hard cases: identical timestamps, times on minute/hour/day boundaries,
    one-event keys and a key with a large share of the events, NULL columns, int and
    float values, event ids whose order breaks timestamp ties."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        pick = rng.random()
        if pick < 0.25:  # on a boundary
            unit = rng.choice([MIN, HOUR, DAY, 5 * MIN])
            ts = T0 + rng.randrange(0, span_ms // unit + 1) * unit
        elif pick < 0.35 and rows:  # the same time as an earlier event
            ts = rng.choice(rows)["ts_ms"]
        else:
            ts = T0 + rng.randrange(0, span_ms)
        user = 1 if rng.random() < 0.3 else rng.randrange(2, 60)
        rows.append(
            {
                "ts_ms": ts,
                "event_id": f"e{rng.randrange(10**6):06d}-{i}",
                "user_id": user,
                "product_id": rng.choice([10, 11, 12, 13, None]),
                "event_type": rng.choice(["view", "view", "cart", "purchase", None]),
                "price": rng.choice([None, 1.5, 2.25, 10.0, rng.uniform(0, 100)]),
                "qty": rng.choice([None, 1, 2, 3, 7]),
            }
        )
    rows.append({"ts_ms": T0 + span_ms // 2 + 7, "event_id": "lonely", "user_id": 999, "product_id": 1,
                 "event_type": "view", "price": 3.0, "qty": 1})  # fmt: skip
    return rows


def oracle_events(rows: Sequence[dict[str, Any]]) -> list[OracleEvent]:
    return [
        OracleEvent(
            ts_ms=r["ts_ms"], event_id=r["event_id"], row={k: v for k, v in r.items() if k not in ("ts_ms",)}
        )
        for r in rows
    ]


def batch(rows: Sequence[dict[str, Any]]) -> EventBatch:
    return EventBatch.from_rows(rows)


def batches(rows: Sequence[dict[str, Any]], size: int) -> list[EventBatch]:
    return [batch(rows[i : i + size]) for i in range(0, len(rows), size)]


def close(a: Any, b: Any) -> bool:
    """Integers (and None) equal exactly, floats within 1e-9 relative."""
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return False
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return bool(a == b) and type(a) is type(b) or (a == b and {type(a), type(b)} <= {int, bool})


def diff(got: dict[str, Any], want: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (got.get(k), want[k]) for k in want if not close(got.get(k), want[k])}


class Oracle:
    """``rtml.testing.oracle.view_values`` with the events grouped by key once."""

    def __init__(self, view: FeatureView, rows: Sequence[dict[str, Any]]) -> None:
        from rtml.testing.oracle import view_values

        self.view = view
        self._values = view_values
        self.by_key: dict[tuple[Any, ...], list[OracleEvent]] = {}
        for e in oracle_events(rows):
            self.by_key.setdefault(tuple(e.row.get(k) for k in view.join_keys), []).append(e)

    def read(self, key: tuple[Any, ...], t_ms: int) -> dict[str, Any]:
        mapping = dict(zip(self.view.join_keys, key, strict=True))
        return self._values(self.view, self.by_key.get(key, []), mapping, t_ms)


def sample_times(rows: Sequence[dict[str, Any]], view: FeatureView, rng: random.Random, n: int) -> list[int]:
    """Read times that hit the hard cases: at, just before and just after events; exactly
    a window (or a window and a hop) after an event; on minute/hour/day boundaries."""
    spans = sorted({int(f.window.total_seconds() * 1000) for f in view.features})
    hops = sorted({int(a.hop_span.total_seconds() * 1000) for a in view.aggregations})
    out = []
    for _ in range(n):
        ts = rng.choice(rows)["ts_ms"]
        pick = rng.random()
        if pick < 0.3:
            t = ts + rng.choice([0, 1, -1])
        elif pick < 0.6:
            t = ts + rng.choice(spans) + rng.choice([0, 0, 1, -1, rng.choice(hops)])
        elif pick < 0.8:
            unit = rng.choice([MIN, HOUR, DAY])
            t = (ts // unit + rng.choice([0, 1])) * unit
        else:
            t = ts + rng.randrange(0, 2 * DAY)
        out.append(t)
    return out
