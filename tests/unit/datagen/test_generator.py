"""The synthetic e-commerce generator: determinism, schema, planted probability, labels."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import rtml
from rtml.datagen import planted
from rtml.datagen.ecommerce import Generation, generate, read_truth, write_truth
from rtml.errors import InvalidInputError
from rtml.timeutil import parse_timestamp, to_millis

SCHEMA_FILE = Path(rtml.__file__).parent / "examples" / "ecommerce" / "schemas" / "event.schema.json"
N = 30_000
SEED = 7


@pytest.fixture(scope="module")
def clean() -> Generation:
    return generate(N, seed=SEED, dirty_rate=0.0)


def auc(scores: list[float], labels: list[bool]) -> float:
    """Rank-sum AUC with mean ranks for ties (independent of the library's)."""
    pairs = sorted(zip(scores, labels, strict=True))
    ranks = [0.0] * len(pairs)
    i = 0
    while i < len(pairs):
        j = i
        while j + 1 < len(pairs) and pairs[j + 1][0] == pairs[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    pos = sum(labels)
    neg = len(labels) - pos
    rank_sum = sum(r for r, (_, y) in zip(ranks, pairs, strict=True) if y)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    a = generate(4000, seed=3)
    b = generate(4000, seed=3)
    c = generate(4000, seed=4)
    assert a.lines == b.lines
    assert a.truth == b.truth
    assert a.lines != c.lines


def test_output_does_not_depend_on_hash_randomization() -> None:
    code = (
        "import hashlib; from rtml.datagen import generate; "
        "g = generate(3000, seed=5); print(hashlib.sha256(b'\\n'.join(g.lines)).hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)
        digests.add(out.stdout.decode().strip())
    here = hashlib.sha256(b"\n".join(generate(3000, seed=5).lines)).hexdigest()
    assert digests == {here}


def test_every_clean_event_validates_against_the_schema(clean: Generation) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    assert len(clean.lines) == N
    previous = None
    for line in clean.lines:
        event = json.loads(line)
        validator.validate(event)
        t = parse_timestamp(event["event_time"])
        assert event["event_time"].endswith("Z")
        assert previous is None or previous <= t  # a clean stream is in event-time order
        previous = t
        assert len(str(event["category_id"])) == 19
        assert "probability" not in event and "label" not in event
    assert len({json.loads(line)["event_id"] for line in clean.lines}) == N


def test_traffic_looks_like_a_store(clean: Generation) -> None:
    events = [json.loads(line) for line in clean.lines]
    types = {t: sum(1 for e in events if e["event_type"] == t) for t in planted.EVENT_TYPES}
    assert types["view"] > 0.75 * N
    assert 0.04 * N < types["cart"] < 0.15 * N
    assert types["remove_from_cart"] > 0 and types["purchase"] > 0
    # returning users: many users have several sessions
    sessions: dict[int, set[str]] = {}
    for e in events:
        sessions.setdefault(e["user_id"], set()).add(e["user_session"])
    assert sum(1 for s in sessions.values() if len(s) >= 3) > 0.2 * len(sessions)
    # popularity skew: the top 1% of products get a large share of the views
    views: dict[int, int] = {}
    for e in events:
        if e["event_type"] == "view":
            views[e["product_id"]] = views.get(e["product_id"], 0) + 1
    top = sorted(views.values(), reverse=True)[: max(1, len(views) // 100)]
    assert sum(top) > 0.1 * types["view"]
    # prices vary per product (promotions), some products lack a brand or category code
    prices: dict[int, set[float]] = {}
    for e in events:
        prices.setdefault(e["product_id"], set()).add(e["price"])
    assert any(len(p) > 1 for p in prices.values())
    assert any(e["brand"] is None for e in events)
    assert any(e["category_code"] is None for e in events)
    # about 14 days by default, with a daily cycle
    first, last = parse_timestamp(events[0]["event_time"]), parse_timestamp(events[-1]["event_time"])
    assert 12 <= (last - first).total_seconds() / 86400 <= 15
    by_hour = [0] * 24
    for e in events:
        by_hour[parse_timestamp(e["event_time"]).hour] += 1
    assert max(by_hour) > 2 * min(by_hour)


def test_label_rate_and_oracle_auc_are_in_the_designed_range(clean: Generation) -> None:
    truth = clean.truth
    labels = [row.label for row in truth]
    rate = sum(labels) / len(labels)
    oracle = auc([row.probability for row in truth], labels)
    assert 0.15 <= rate <= 0.35
    assert 0.75 <= oracle <= 0.9
    assert clean.summary.oracle_auc == pytest.approx(oracle)
    assert clean.summary.positive_rate == pytest.approx(rate)
    assert len(truth) == clean.summary.carts


def _events(lines: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        e = json.loads(line)
        e["t"] = to_millis(parse_timestamp(e["event_time"]))
        out.append(e)
    return out


def test_labels_are_purchases_of_the_product_within_the_hour(clean: Generation) -> None:
    events = _events(clean.lines)
    purchases: dict[tuple[int, int], list[int]] = {}
    for e in events:
        if e["event_type"] == "purchase":
            purchases.setdefault((e["user_id"], e["product_id"]), []).append(e["t"])
    by_id = {e["event_id"]: e for e in events}
    for row in clean.truth:
        cart = by_id[row.event_id]
        assert cart["event_type"] == "cart"
        times = purchases.get((row.user_id, row.product_id), [])
        assert row.label == any(cart["t"] < p <= cart["t"] + planted.HOUR_MS for p in times)
    # noise: purchases without a cart of the product by the user in the hour before
    carts = {(e["user_id"], e["product_id"], e["t"]) for e in events if e["event_type"] == "cart"}
    lonely = [
        e
        for e in events
        if e["event_type"] == "purchase"
        and not any(
            (u, p) == (e["user_id"], e["product_id"]) and e["t"] - planted.HOUR_MS <= t < e["t"]
            for u, p, t in carts
        )
    ]
    assert len(lonely) > 20


def _brute_force_probability(history: list[dict[str, Any]], cart: dict[str, Any]) -> float:
    """The documented formula, from the events strictly before the cart, by plain scans."""
    t, u, i = cart["t"], cart["user_id"], cart["product_id"]
    past = [e for e in history if e["t"] < t]

    def count(kind: str, window: int, user: int | None, product: int | None) -> int:
        return sum(
            1
            for e in past
            if e["event_type"] == kind
            and e["t"] >= t - window
            and (user is None or e["user_id"] == user)
            and (product is None or e["product_id"] == product)
        )

    week = 7 * planted.DAY_MS
    product_prices = [e["price"] for e in past if e["product_id"] == i and e["t"] >= t - week]
    ratio = cart["price"] / (sum(product_prices) / len(product_prices)) if product_prices else 1.0
    c = planted.COEFFICIENTS
    z = (
        planted.INTERCEPT
        + c["views_product_1h"] * math.log1p(count("view", planted.HOUR_MS, u, i))
        + c["views_product_1d"] * math.log1p(count("view", planted.DAY_MS, u, i))
        + c["carts_product_1d"] * math.log1p(count("cart", planted.DAY_MS, u, i))
        + c["purchases_user_30d"] * math.log1p(count("purchase", 30 * planted.DAY_MS, u, None))
        + c["views_user_10m"] * math.log1p(count("view", 10 * planted.MINUTE_MS, u, None))
        + c["price_ratio"] * (ratio - 1.0)
        + c["product_conversion_7d"] * count("purchase", week, None, i) / (count("cart", week, None, i) + 1.0)
    )
    return 1 / (1 + math.exp(-z))


def test_planted_probability_uses_only_earlier_events(clean: Generation) -> None:
    events = _events(clean.lines[:8000])
    index = {e["event_id"]: k for k, e in enumerate(events)}
    rows = [r for r in clean.truth if r.event_id in index]
    # 1. a state fed the whole stream, after the carts too, gives the same probabilities
    state = planted.BehaviourState()
    for e in events:
        kind = planted.EVENT_TYPE_CODES[e["event_type"]]
        state.observe(e["t"], kind, e["user_id"], e["product_id"], e["price"])
    for row in rows:
        cart = events[index[row.event_id]]
        features = state.features(cart["t"], row.user_id, row.product_id, cart["price"])
        assert features.probability() == pytest.approx(row.probability, rel=1e-9)
    # 2. the documented formula over the stream truncated just before the cart agrees
    for row in rows[:: max(1, len(rows) // 40)]:
        k = index[row.event_id]
        expected = _brute_force_probability(events[:k], events[k])
        assert expected == pytest.approx(row.probability, rel=1e-9)


def test_dirty_events_do_not_change_the_valid_stream_or_its_truth(clean: Generation) -> None:
    dirty = generate(N, seed=SEED, dirty_rate=0.1)
    valid_ids = {json.loads(line)["event_id"] for line in clean.lines}
    kept = dirty.truth
    assert dirty.summary.valid < N
    assert len(kept) > 0.9 * len(clean.truth)
    common = clean.truth[: len(kept)]
    assert [r.event_id for r in kept] == [r.event_id for r in common]
    assert [r.probability for r in kept] == [r.probability for r in common]
    assert all(r.event_id in valid_ids for r in kept)
    # the valid lines of the dirty run are, byte for byte, a prefix of the clean run
    clean_prefix = set(clean.lines[: dirty.summary.valid])
    assert clean_prefix <= set(dirty.lines)
    assert len(set(dirty.lines) - clean_prefix) == dirty.summary.invalid


def test_rate_sets_the_span_and_start_is_honoured() -> None:
    start = datetime(2020, 3, 1, 12, 0, tzinfo=UTC)
    g = generate(3000, seed=1, start=start, rate=10.0, dirty_rate=0.0)
    first = parse_timestamp(json.loads(g.lines[0])["event_time"])
    last = parse_timestamp(json.loads(g.lines[-1])["event_time"])
    assert start <= first
    assert 150 <= (last - start).total_seconds() <= 600  # 3000 events at ~10/s


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_events": 0},
        {"n_events": 10, "seed": -1},
        {"n_events": 10, "days": 1.0, "rate": 1.0},
        {"n_events": 10, "days": 0.0},
        {"n_events": 10, "dirty_rate": 0.9},
        {"n_events": 10, "start": datetime(2019, 10, 1)},
    ],
)
def test_bad_arguments_raise_invalid_input(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        generate(**kwargs)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_truth_file_round_trips(tmp_path: Path, suffix: str) -> None:
    g = generate(3000, seed=2)
    path = tmp_path / f"truth{suffix}"
    write_truth(g.truth, path)
    assert read_truth(path) == g.truth
    if suffix == ".csv":
        header = path.read_text().splitlines()[0]
        assert header == "event_id,user_id,product_id,event_time,probability,label,horizon_complete"
