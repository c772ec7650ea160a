"""Dirty events: malformed extras, exact duplicates and late (out-of-order) deliveries.

``dirty_rate`` is the share of all produced lines that are dirty; it is split among the
kinds below by fixed shares (counts are rounded, so small runs may miss a kind). Invalid
kinds are *extra* events with fresh event ids, so they never touch the planted labels;
duplicates are byte-exact copies of earlier valid lines, re-sent 1 s - 30 min of event
time later; out-of-order events are valid lines moved 5 s - 10 min later in the stream.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import numpy as np

from rtml.datagen.sessions import uuid_like
from rtml.timeutil import parse_timestamp

DIRTY_SHARES: dict[str, float] = {
    "wrong_type": 0.15,  # price "12.x" or product_id "abc"
    "missing_field": 0.12,  # one required field dropped
    "negative_price": 0.08,
    "unknown_event_type": 0.08,  # e.g. "wishlist"
    "bad_timestamp": 0.08,  # unparseable event_time
    "future_timestamp": 0.07,  # event_time 30 days ahead of the stream
    "broken_json": 0.07,  # the line is cut short
    "duplicate": 0.20,  # an earlier valid line, sent again byte for byte
    "out_of_order": 0.15,  # a valid line delivered late (valid, not counted as dirty input)
}
INVALID_KINDS = tuple(k for k in DIRTY_SHARES if k not in {"duplicate", "out_of_order"})
REQUIRED_FIELDS = ("event_id", "event_time", "event_type", "product_id", "category_id", "price", "user_id")
UNKNOWN_TYPES = ("wishlist", "click", "refund", "VIEW")
BAD_TIMESTAMPS = ("2019-13-45T99:00:00Z", "yesterday", "", "2019-10-01T25:61:00", "1569888000x")
FUTURE_SHIFT_DAYS = 30
DUPLICATE_DELAY_S = (1.0, 1800.0)
LATE_DELAY_S = (5.0, 600.0)


def plan_counts(n_events: int, dirty_rate: float) -> dict[str, int]:
    """How many lines of each dirty kind ``n_events`` produced lines hold (largest
    remainder rounding, so the counts add up to ``round(n_events * dirty_rate)``)."""
    total = round(n_events * dirty_rate)
    exact = {kind: total * share for kind, share in DIRTY_SHARES.items()}
    counts = {kind: int(value) for kind, value in exact.items()}
    by_remainder = sorted(DIRTY_SHARES, key=lambda k: (counts[k] - exact[k], k))
    for kind in by_remainder[: total - sum(counts.values())]:
        counts[kind] += 1
    return counts


def _shifted_time(text: str, days: int) -> str:
    shifted = parse_timestamp(text) + timedelta(days=days)
    return shifted.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _malformed(kind: str, event: dict[str, Any], rng: np.random.Generator) -> bytes:
    """A copy of ``event`` (already given a fresh id) broken in the way ``kind`` says."""
    pick = int(rng.integers(0, 1 << 30))
    if kind == "wrong_type":
        if pick % 2:
            event["price"] = f"{int(event['price'])}.x"
        else:
            event["product_id"] = "abc"
    elif kind == "missing_field":
        del event[REQUIRED_FIELDS[pick % len(REQUIRED_FIELDS)]]
    elif kind == "negative_price":
        event["price"] = -round(abs(event["price"]) + 1.0, 2)
    elif kind == "unknown_event_type":
        event["event_type"] = UNKNOWN_TYPES[pick % len(UNKNOWN_TYPES)]
    elif kind == "bad_timestamp":
        event["event_time"] = BAD_TIMESTAMPS[pick % len(BAD_TIMESTAMPS)]
    elif kind == "future_timestamp":
        event["event_time"] = _shifted_time(event["event_time"], FUTURE_SHIFT_DAYS)
    line = json.dumps(event, separators=(",", ":")).encode()
    if kind == "broken_json":
        cut = len(line) // 4 + pick % max(1, len(line) * 3 // 4 - 1)
        line = line[: min(cut, len(line) - 2)]
    return line


def inject(
    lines: list[bytes], times: list[int], counts: dict[str, int], rng: np.random.Generator
) -> tuple[list[bytes], dict[str, int]]:
    """The produced stream: ``lines`` (valid, in event-time order ``times`` ms) with the
    dirty events of ``counts`` mixed in, and the counts actually mixed in (a stream of
    fewer than 3 valid lines gets no out-of-order events)."""
    n = len(lines)
    done = dict.fromkeys(DIRTY_SHARES, 0)
    if n < 1 or not any(counts.values()):
        return list(lines), done
    times_arr = np.asarray(times, dtype=np.int64)
    extra: list[bytes] = []
    positions: list[int] = []  # an extra line goes just before valid line ``position``

    n_late = min(counts.get("out_of_order", 0), max(0, n - 2))
    done.update(counts)
    done["out_of_order"] = n_late
    late = rng.choice(n - 2, size=n_late, replace=False) if n_late else np.zeros(0, np.int64)
    delay = (rng.uniform(*LATE_DELAY_S, n_late) * 1000).astype(np.int64)
    late_pos = np.searchsorted(times_arr, times_arr[late] + delay, side="right")
    late_pos = np.minimum(np.maximum(late_pos, late + 2), n)
    for i, p in zip(late.tolist(), late_pos.tolist(), strict=True):
        extra.append(lines[i])
        positions.append(p)

    n_dup = counts.get("duplicate", 0)
    moved = np.zeros(n, dtype=bool)
    moved[late] = True
    candidates = np.flatnonzero(~moved)
    sources = candidates[rng.integers(0, len(candidates), n_dup)]
    delay = (rng.uniform(*DUPLICATE_DELAY_S, n_dup) * 1000).astype(np.int64)
    dup_pos = np.searchsorted(times_arr, times_arr[sources] + delay, side="right")
    for i, p in zip(sources.tolist(), np.maximum(dup_pos, sources + 1).tolist(), strict=True):
        extra.append(lines[i])
        positions.append(p)

    for kind in INVALID_KINDS:
        k = counts.get(kind, 0)
        if not k:
            continue
        templates = rng.integers(0, n, k).tolist()
        ids = uuid_like(rng, k)
        for template, event_id in zip(templates, ids, strict=True):
            event = json.loads(lines[template])
            event["event_id"] = event_id
            extra.append(_malformed(kind, event, rng))
        positions.extend(rng.integers(0, n + 1, k).tolist())

    keep = np.flatnonzero(~moved)
    all_lines = [lines[i] for i in keep.tolist()] + extra
    pos = np.concatenate([keep, np.asarray(positions, dtype=np.int64)])
    cls = np.concatenate([np.ones(len(keep), dtype=np.int8), np.zeros(len(extra), np.int8)])
    seq = np.arange(len(all_lines))
    order = np.lexsort((seq, cls, pos))
    return [all_lines[k] for k in order.tolist()], done
