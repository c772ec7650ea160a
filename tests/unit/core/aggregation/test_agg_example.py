"""The example project's three views on the generator's stream, against the oracle."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from agg_cases import Oracle, batches, diff, sample_times

from rtml.core.aggregation import build
from rtml.datagen import generate
from rtml.definitions.loader import load_definitions

EXAMPLE = Path(__file__).resolve().parents[4] / "src" / "rtml" / "examples" / "ecommerce"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for line in generate(n, seed=3, dirty_rate=0).lines:
        event = json.loads(line)
        when = datetime.fromisoformat(event.pop("event_time").replace("Z", "+00:00"))
        event["ts_ms"] = (when - EPOCH) // timedelta(milliseconds=1)
        rows.append(event)
    return rows


@pytest.mark.parametrize("exact_for", [timedelta(days=40), timedelta(minutes=10)])
def test_example_views_equal_the_oracle(exact_for: timedelta) -> None:
    defs = load_definitions(EXAMPLE)
    views = [defs.feature_view(n) for n in ("user_activity", "product_stats", "user_product")]
    rows = _rows(4000)
    runtime = build(views, exact_for=exact_for)
    for b in batches(rows, 500):
        runtime.apply(b)
    rng = random.Random(1)
    for v in views:
        rt, oracle = runtime[v.name], Oracle(v, rows)
        keys = list(oracle.by_key)
        times = sample_times(rows, v, rng, 150)
        if rt.covered_from is not None and exact_for < timedelta(days=1):
            times = [rt.covered_from + rng.randrange(0, 2 * 3_600_000) for _ in range(150)]
        for t in times:
            key = rng.choice(keys)
            got, want = rt.read(key, t), oracle.read(key, t)
            assert not diff(got, want), (v.name, key, t, diff(got, want))
