"""Aggregation core: applying the example's 3 feature views to the generator's stream, and
reading them back, against a straightforward per-event Python peer in the same run.

    python bench/aggregation.py [--events 200000] [--batch 10000] [--reads 2000] [--peer-events 50000]

* stream: ``generate(N, seed=1, dirty_rate=0)`` (14 days of event time, so a 10k batch
  spans about 17 hours) and the same with ``rate=2000`` events/s of event time (a live
  stream: a batch spans 5 s and every event also goes to the exact head). Lines are
  parsed (msgspec) into columns beforehand; that cost is shown on its own row.
* rtml: ``build([user_activity, product_stats, user_product]).apply(EventBatch)`` per
  batch (18 features, windows 5 min .. 30 days, hops 1 min / 1 h, ``where`` filters).
* peer: per event and view, the ``where`` filters (``compile_filter``), then a dict of
  hop tiles per (view, key, aggregation) updated with the reference partials of
  ``rtml.core.aggregation.functions``, plus the key's raw events for the exact head; a read
  merges the hop tiles of the window one by one. Run on the first ``--peer-events`` events.
* reads: every feature of one view for one key at the high-water mark (the user view
  includes a 30-day window), from the runtime, from one key's exported blob
  (``StateReader``, what an online store does) and from the peer; values are compared.

Prints a table and writes ``bench/results/aggregation.json``.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from common import report

from rtml.core.aggregation import EventBatch, StateReader, build
from rtml.core.aggregation.functions import function_for
from rtml.core.sqleval import compile_filter
from rtml.datagen import generate
from rtml.definitions.feature_view import FeatureView
from rtml.definitions.loader import load_definitions

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "rtml" / "examples" / "ecommerce"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)


class Event(msgspec.Struct):
    event_id: str
    event_time: datetime
    event_type: str
    product_id: int
    category_id: int
    price: float
    user_id: int
    category_code: str | None = None
    brand: str | None = None
    user_session: str | None = None


def parse(lines: list[bytes]) -> tuple[list[int], list[str], dict[str, list[Any]]]:
    decoder = msgspec.json.Decoder(Event)
    events = [decoder.decode(line) for line in lines]
    ts = [(e.event_time - EPOCH) // MS for e in events]
    ids = [e.event_id for e in events]
    cols = {
        "event_type": [e.event_type for e in events],
        "product_id": [e.product_id for e in events],
        "price": [e.price for e in events],
        "user_id": [e.user_id for e in events],
    }
    return ts, ids, cols


class Peer:
    """The straightforward implementation: per event, per view, per aggregation."""

    def __init__(self, views: list[FeatureView]) -> None:
        self.views = views
        self.specs = []
        for view in views:
            aggs = []
            for agg in view.aggregations:
                keep = compile_filter(agg.where_expression) if agg.where_expression is not None else None
                hop = agg.hop_span // MS
                feats = [(f.name, f.window // MS) for f in view.features if f.aggregation is agg]
                aggs.append((agg, keep, hop, function_for(agg.function, agg.column), feats))
            self.specs.append((view, aggs))
        self.tiles: dict[tuple[str, Any, int], dict[int, Any]] = defaultdict(dict)
        self.events: dict[tuple[str, Any], list[tuple[int, str, dict[str, Any]]]] = defaultdict(list)

    def apply(self, rows: list[tuple[int, str, dict[str, Any]]]) -> None:
        for ts, eid, row in rows:
            for view, aggs in self.specs:
                keys = view.join_keys
                key = row[keys[0]] if len(keys) == 1 else tuple(row[k] for k in keys)
                self.events[(view.name, key)].append((ts, eid, row))
                for i, (agg, keep, hop, fn, _) in enumerate(aggs):
                    if keep is not None and not keep(row):
                        continue
                    tiles = self.tiles[(view.name, key, i)]
                    idx = ts // hop
                    acc = tiles.get(idx)
                    value = row.get(agg.column) if agg.column else 1
                    tiles[idx] = fn.update(fn.init() if acc is None else acc, value, ts, eid)

    def read(self, view_name: str, key: Any, t: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for view, aggs in self.specs:
            if view.name != view_name:
                continue
            for i, (agg, keep, hop, fn, feats) in enumerate(aggs):
                tiles = self.tiles.get((view.name, key, i), {})
                head_start = (t // hop) * hop
                head = fn.init()
                for ts, eid, row in self.events.get((view.name, key), []):
                    if head_start <= ts < t and (keep is None or keep(row)):
                        head = fn.update(head, row.get(agg.column) if agg.column else 1, ts, eid)
                for name, window in feats:
                    acc = head
                    for idx in range(((t - window) // hop), t // hop):
                        part = tiles.get(idx)
                        if part is not None:
                            acc = fn.merge(acc, part)
                    out[name] = fn.result(acc)
        return out


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return bool(a == b)


def timed_apply(views: list[FeatureView], batches: list[EventBatch]) -> tuple[float, Any]:
    runtime = build(views)
    t0 = time.perf_counter()
    for b in batches:
        runtime.apply(b)
    return time.perf_counter() - t0, runtime


def scenario(views: list[FeatureView], lines: list[bytes], batch: int, repeat: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    ts, ids, cols = parse(lines)
    parse_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    batches = [
        EventBatch.from_columns(
            ts[i : i + batch], ids[i : i + batch], {k: v[i : i + batch] for k, v in cols.items()}
        )
        for i in range(0, len(ts), batch)
    ]
    columns_s = time.perf_counter() - t0
    best, runtime = min((timed_apply(views, batches) for _ in range(repeat)), key=lambda r: r[0])
    return {"ts": ts, "ids": ids, "cols": cols, "parse_s": parse_s, "columns_s": columns_s,
            "apply_s": best, "runtime": runtime}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=2_000)
    parser.add_argument("--peer-events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    defs = load_definitions(EXAMPLE)
    views = [defs.feature_view(n) for n in ("user_activity", "product_stats", "user_product")]
    n = args.events

    historical = scenario(views, generate(n, seed=1, dirty_rate=0).lines, args.batch, args.repeat)
    live = scenario(views, generate(n, seed=1, dirty_rate=0, rate=2000).lines, args.batch, args.repeat)

    # the peer, on a prefix of the historical stream
    ts, ids, cols = historical["ts"], historical["ids"], historical["cols"]
    m = min(args.peer_events, n)
    names = list(cols)
    peer_rows = [(ts[i], ids[i], {c: cols[c][i] for c in names}) for i in range(m)]
    peer = Peer(views)
    t0 = time.perf_counter()
    peer.apply(peer_rows)
    peer_s = time.perf_counter() - t0

    # reads at the peer's high-water mark, on a runtime fed the same prefix
    prefix = build(views)
    prefix.apply(EventBatch.from_columns(ts[:m], ids[:m], {c: v[:m] for c, v in cols.items()}))
    now = max(ts[:m]) + 1
    rng = random.Random(7)
    samples = []
    for view in views:
        keys = prefix[view.name].keys()
        samples += [(view, rng.choice(keys)) for _ in range(args.reads // len(views))]
    readers = {v.name: StateReader(v) for v in views}
    blobs = [prefix[v.name].state_of(k) for v, k in samples]

    t0 = time.perf_counter()
    ours = [prefix.read(v.name, k, now) for v, k in samples]
    read_us = (time.perf_counter() - t0) / len(samples) * 1e6
    t0 = time.perf_counter()
    from_blobs = [readers[v.name].read(b, now) for (v, _), b in zip(samples, blobs, strict=True)]
    blob_us = (time.perf_counter() - t0) / len(samples) * 1e6
    t0 = time.perf_counter()
    theirs = [peer.read(v.name, k, now) for v, k in samples]
    peer_read_us = (time.perf_counter() - t0) / len(samples) * 1e6
    mismatches = sum(
        1
        for a, b, c in zip(ours, theirs, from_blobs, strict=True)
        for f in a
        if not (close(a[f], b[f]) and close(a[f], c[f]))
    )
    user_view = [(v, k) for v, k in samples if v.name == "user_activity"]
    t0 = time.perf_counter()
    for v, k in user_view:
        prefix.read(v.name, k, now)
    user_read_us = (time.perf_counter() - t0) / max(1, len(user_view)) * 1e6
    # hot keys: the 20 products with the most events, where a per-event peer pays most
    counts: dict[Any, int] = defaultdict(int)
    for p in cols["product_id"][:m]:
        counts[p] += 1
    hot = sorted(counts, key=counts.__getitem__)[-20:]
    stats = next(v for v in views if v.name == "product_stats")
    t0 = time.perf_counter()
    hot_ours = [prefix.read(stats.name, k, now) for k in hot]
    hot_us = (time.perf_counter() - t0) / len(hot) * 1e6
    t0 = time.perf_counter()
    hot_theirs = [peer.read(stats.name, k, now) for k in hot]
    hot_peer_us = (time.perf_counter() - t0) / len(hot) * 1e6
    mismatches += sum(
        1 for a, b in zip(hot_ours, hot_theirs, strict=True) for f in a if not close(a[f], b[f])
    )
    blob_bytes = float(np.mean([len(b) for b in blobs]))

    def rate(s: float, count: int) -> float:
        return round(count / s)

    rows = [
        ["rtml apply, 14-day stream (3 views, 10k batches)", rate(historical["apply_s"], n), "", ""],
        ["rtml apply, live-rate stream (2k ev/s event time)", rate(live["apply_s"], n), "", ""],
        ["rtml columns -> EventBatch (not in apply)", rate(historical["columns_s"], n), "", ""],
        ["parse JSON lines (msgspec, not in apply)", rate(historical["parse_s"], n), "", ""],
        [f"peer per-event Python ({m:,} events)", rate(peer_s, m), "", ""],
        ["rtml read (one view, all features)", "", round(read_us, 1), ""],
        ["rtml read user_activity (incl. 30-day window)", "", round(user_read_us, 1), ""],
        ["rtml read from one key's blob (StateReader)", "", round(blob_us, 1), round(blob_bytes)],
        ["peer read (one view, all features)", "", round(peer_read_us, 1), ""],
        [
            f"rtml read product_stats, 20 hottest products (~{max(counts.values())} events)",
            "",
            round(hot_us, 1),
            "",
        ],
        ["peer read product_stats, 20 hottest products", "", round(hot_peer_us, 1), ""],
    ]
    report(
        "aggregation",
        f"Aggregation core: {n:,} events, 3 views / 18 features, 1 core; {mismatches} read mismatches",
        ["what", "events/s", "µs per read", "blob bytes"],
        rows,
        {
            "benchmark": "aggregation",
            "events": n,
            "batch": args.batch,
            "peer_events": m,
            "reads": len(samples),
            "read_mismatches": mismatches,
            "speedup_apply": round((n / historical["apply_s"]) / (m / peer_s), 1),
            "speedup_read": round(peer_read_us / read_us, 1),
            "speedup_read_hot": round(hot_peer_us / hot_us, 1),
        },
    )


if __name__ == "__main__":
    main()
