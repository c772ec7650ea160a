"""Synthetic e-commerce clickstream with a planted, known purchase probability.

``generate(n_events, seed=...)`` returns the raw lines of the stream (JSON events of
``examples/ecommerce/schemas/event.schema.json``, dirty ones mixed in), the truth of each
cart event (its planted probability and realized label) and a summary of counts. The same
arguments give byte-identical output; nothing depends on the wall clock.

How it works: :mod:`~rtml.datagen.catalog` draws the store, :mod:`~rtml.datagen.sessions`
the browsing sessions, and :func:`generate` replays them in event-time order while keeping
:class:`~rtml.datagen.planted.BehaviourState`: at each cart it computes the planted
probability from earlier events only, draws the purchase and schedules it 1-50 minutes
later. :mod:`~rtml.datagen.dirty` mixes in the dirty events. See ``docs/generator.md``.
"""

from __future__ import annotations

import csv
import heapq
import json
import math
import random
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rtml.datagen import dirty
from rtml.datagen.catalog import Catalog, build_catalog
from rtml.datagen.planted import (
    CART,
    DAY_MS,
    EVENT_TYPES,
    HOUR_MS,
    MINUTE_MS,
    PURCHASE,
    BehaviourState,
    rank_auc,
)
from rtml.datagen.sessions import Skeleton, build_skeleton, uuid_like
from rtml.errors import InvalidInputError
from rtml.timeutil import from_millis, to_millis

DEFAULT_START = datetime(2019, 10, 1, tzinfo=UTC)
DEFAULT_DAYS = 14.0
DEFAULT_DIRTY_RATE = 0.03
LABEL_HORIZON_MS = HOUR_MS  # label: the same user buys the same product within 1 h
PURCHASE_DELAY_MINUTES = (1.0, 50.0)  # a planted purchase follows its cart by U(1, 50) min
LATE_PURCHASE = 0.08  # share of non-buying carts bought later anyway, 61 min - 24 h after
LATE_PURCHASE_MINUTES = (61.0, 24 * 60.0)
EVENTS_PER_USER = 40  # the store has n_events / 40 users ...
EVENTS_PER_PRODUCT = 80  # ... and n_events / 80 products
MAX_DIRTY_RATE = 0.5

_LINE = (
    '{{"event_id":"{}","event_time":"{}Z","event_type":"{}",{},"price":{!r},'
    '"user_id":{},"user_session":"{}"}}'
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TruthRow:
    """The truth about one cart event: never part of the event stream."""

    event_id: str
    user_id: int
    product_id: int
    event_time: str
    probability: float  # the planted probability of a purchase within the hour
    label: bool  # realized: a purchase of the product by the user in (t, t + 1 h]
    horizon_complete: bool  # False when t + 1 h is past the end of the stream


@dataclass(frozen=True, kw_only=True)
class GenerationSummary:
    """Counts of a generated stream: ``valid + invalid + duplicates == produced``."""

    produced: int  # lines in the stream
    valid: int  # distinct valid events (late ones included)
    invalid: int  # malformed extras the validator must reject
    duplicates: int  # byte-exact re-sends of valid events
    out_of_order: int  # valid events delivered late
    kinds: Mapping[str, int]  # every dirty kind -> count
    event_types: Mapping[str, int]  # valid events per event_type
    carts: int
    positives: int
    positive_rate: float
    oracle_auc: float  # AUC of the planted probability against the realized labels
    first_event_time: datetime | None
    last_event_time: datetime | None


@dataclass(frozen=True, kw_only=True)
class Generation:
    lines: list[bytes]  # one raw event per element, no trailing newline
    truth: list[TruthRow]  # one row per valid cart event, in event-time order
    summary: GenerationSummary


@dataclass(slots=True)
class _Clean:
    """The valid stream in event-time order, as parallel lists."""

    times: list[int]
    kinds: list[int]
    users: list[int]
    products: list[int]
    sessions: list[int]
    prices: list[float]
    carts: list[tuple[int, float]]  # (index in the stream, planted probability)


def _check_args(n_events: int, seed: int, days: float | None, rate: float | None, dirty_rate: float) -> None:
    if n_events < 1:
        raise InvalidInputError(f"the number of events must be at least 1, got {n_events}")
    if seed < 0:
        raise InvalidInputError(f"the seed must be a non-negative integer, got {seed}")
    if days is not None and rate is not None:
        raise InvalidInputError("give either days or rate, not both")
    if days is not None and not days > 0:
        raise InvalidInputError(f"days must be positive, got {days}")
    if rate is not None and not rate > 0:
        raise InvalidInputError(f"rate must be positive (events per second), got {rate}")
    if not 0 <= dirty_rate <= MAX_DIRTY_RATE:
        raise InvalidInputError(f"dirty_rate must be between 0 and {MAX_DIRTY_RATE}, got {dirty_rate}")


def generate(
    n_events: int,
    *,
    seed: int = 0,
    start: datetime = DEFAULT_START,
    days: float | None = None,
    rate: float | None = None,
    dirty_rate: float = DEFAULT_DIRTY_RATE,
) -> Generation:
    """Generate ``n_events`` raw lines starting at ``start`` (aware datetime).

    The traffic spreads over about ``days`` days (default 14) or arrives at ``rate``
    events per second of event time. ``dirty_rate`` is the share of dirty lines. The
    valid stream does not depend on ``dirty_rate`` beyond its length: the valid lines of
    a run are a prefix of those of the run with the same other arguments and no dirt.
    """
    _check_args(n_events, seed, days, rate, dirty_rate)
    if start.tzinfo is None:
        raise InvalidInputError(f"start {start.isoformat()} has no timezone; give an aware UTC datetime")
    start_ms = to_millis(start)
    span_ms = n_events / rate * 1000 if rate is not None else (days or DEFAULT_DAYS) * DAY_MS
    counts = dirty.plan_counts(n_events, dirty_rate)
    n_valid = n_events - sum(counts[k] for k in (*dirty.INVALID_KINDS, "duplicate"))

    streams = np.random.SeedSequence(seed).spawn(6)
    catalog_ss, browse_ss, ids_ss, sessions_ss, dirty_ss, python_ss = streams
    python_seeds = python_ss.generate_state(2).tolist()
    catalog = build_catalog(
        np.random.default_rng(catalog_ss),
        n_products=max(50, n_events // EVENTS_PER_PRODUCT),
        n_users=max(20, n_events // EVENTS_PER_USER),
        n_days=math.ceil(span_ms / DAY_MS) + 2,
    )
    skeleton = build_skeleton(
        catalog,
        np.random.default_rng(browse_ss),
        random.Random(python_seeds[0]),
        start_ms=start_ms,
        events_per_hour=n_events * HOUR_MS / span_ms,
        min_events=n_valid,
    )
    session_ids = skeleton.session_ids
    clean = _simulate(skeleton, catalog, random.Random(python_seeds[1]), start_ms, n_valid)

    # Separate streams for each use keep the valid stream a prefix-stable function of the seed.
    event_ids = uuid_like(np.random.default_rng(ids_ss), n_valid)
    n_late_sessions = max(clean.sessions, default=0) + 1 - len(session_ids)
    session_ids = session_ids + uuid_like(np.random.default_rng(sessions_ss), max(0, n_late_sessions))
    stamps = np.datetime_as_string(np.asarray(clean.times, dtype="datetime64[ms]"), unit="ms")
    stamps_list: list[str] = stamps.tolist()
    lines = [
        _LINE.format(
            event_ids[k],
            stamps_list[k],
            EVENT_TYPES[clean.kinds[k]],
            catalog.product_json[clean.products[k]],
            clean.prices[k],
            catalog.user_ids[clean.users[k]],
            session_ids[clean.sessions[k]],
        ).encode()
        for k in range(n_valid)
    ]
    truth = _truth(clean, catalog.user_ids, catalog.product_ids, event_ids, stamps_list)
    produced, counts = dirty.inject(lines, clean.times, counts, np.random.default_rng(dirty_ss))
    return Generation(lines=produced, truth=truth, summary=_summary(produced, clean, truth, counts))


def _simulate(
    skeleton: Skeleton, catalog: Catalog, rnd: random.Random, start_ms: int, n_valid: int
) -> _Clean:
    """Replay the browsing events in time order, drawing the purchases that follow carts."""
    times, kinds, users, products = skeleton.times, skeleton.kinds, skeleton.users, skeleton.products
    sessions = skeleton.sessions
    order: list[int] = np.argsort(np.asarray(times, dtype=np.int64), kind="stable").tolist()
    pending: list[tuple[int, int, int, int, int]] = []  # (time, seq, user, product, session)
    state = BehaviourState()
    out = _Clean([], [], [], [], [], [], [])
    next_session = len(skeleton.session_ids)
    seq = pos = 0
    n_skeleton = len(order)
    prices = catalog.prices
    last_day = len(prices[0]) - 1
    while len(out.times) < n_valid:
        if pending and (pos >= n_skeleton or pending[0][0] < times[order[pos]]):
            t, _, u, i, s = heapq.heappop(pending)
            kind = PURCHASE
        else:
            j = order[pos]
            pos += 1
            t, kind, u, i, s = times[j], kinds[j], users[j], products[j], sessions[j]
        price = prices[i][min(max((t - start_ms) // DAY_MS, 0), last_day)]
        if kind == CART:
            p = state.features(t, u, i, price).probability()
            out.carts.append((len(out.times), p))
            if rnd.random() < p:
                delay = rnd.uniform(*PURCHASE_DELAY_MINUTES) * MINUTE_MS
                heapq.heappush(pending, (t + int(delay), seq, u, i, s))
                seq += 1
            elif rnd.random() < LATE_PURCHASE:
                delay = rnd.uniform(*LATE_PURCHASE_MINUTES) * MINUTE_MS
                heapq.heappush(pending, (t + int(delay), seq, u, i, next_session))
                seq += 1
                next_session += 1
        state.observe(t, kind, u, i, price)
        out.times.append(t)
        out.kinds.append(kind)
        out.users.append(u)
        out.products.append(i)
        out.sessions.append(s)
        out.prices.append(price)
    return out


def _truth(
    clean: _Clean,
    user_ids: list[int],
    product_ids: list[int],
    event_ids: list[str],
    stamps: list[str],
) -> list[TruthRow]:
    purchases: dict[tuple[int, int], list[int]] = {}
    for t, kind, u, i in zip(clean.times, clean.kinds, clean.users, clean.products, strict=True):
        if kind == PURCHASE:
            purchases.setdefault((u, i), []).append(t)
    end = clean.times[-1] if clean.times else 0
    rows = []
    for k, p in clean.carts:
        t, u, i = clean.times[k], clean.users[k], clean.products[k]
        bought = purchases.get((u, i), [])
        nxt = bisect_right(bought, t)
        rows.append(
            TruthRow(
                event_id=event_ids[k],
                user_id=user_ids[u],
                product_id=product_ids[i],
                event_time=stamps[k] + "Z",
                probability=p,
                label=nxt < len(bought) and bought[nxt] <= t + LABEL_HORIZON_MS,
                horizon_complete=t + LABEL_HORIZON_MS <= end,
            )
        )
    return rows


def _summary(
    produced: list[bytes], clean: _Clean, truth: list[TruthRow], counts: dict[str, int]
) -> GenerationSummary:
    kinds = {name: 0 for name in EVENT_TYPES}
    for kind in clean.kinds:
        kinds[EVENT_TYPES[kind]] += 1
    positives = sum(1 for row in truth if row.label)
    invalid = sum(counts[k] for k in dirty.INVALID_KINDS)
    return GenerationSummary(
        produced=len(produced),
        valid=len(clean.times),
        invalid=invalid,
        duplicates=counts["duplicate"],
        out_of_order=counts["out_of_order"],
        kinds=dict(counts),
        event_types=kinds,
        carts=len(truth),
        positives=positives,
        positive_rate=positives / len(truth) if truth else math.nan,
        oracle_auc=rank_auc([r.probability for r in truth], [r.label for r in truth]),
        first_event_time=from_millis(clean.times[0]) if clean.times else None,
        last_event_time=from_millis(clean.times[-1]) if clean.times else None,
    )


TRUTH_FIELDS = ("event_id", "user_id", "product_id", "event_time", "probability", "label", "horizon_complete")


def write_truth(rows: Iterable[TruthRow], path: str | Path) -> None:
    """Write truth rows to ``path``: JSON lines for ``.jsonl``/``.json``, else CSV
    (labels as 0/1)."""
    target = Path(path)
    with target.open("w", newline="", encoding="utf-8") as f:
        if target.suffix.lower() in {".jsonl", ".json", ".ndjson"}:
            for row in rows:
                f.write(json.dumps(asdict(row), separators=(",", ":")) + "\n")
            return
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(TRUTH_FIELDS)
        for row in rows:
            writer.writerow(
                (
                    row.event_id,
                    row.user_id,
                    row.product_id,
                    row.event_time,
                    repr(row.probability),
                    int(row.label),
                    int(row.horizon_complete),
                )
            )


def read_truth(path: str | Path) -> list[TruthRow]:
    """Read a file written by :func:`write_truth`."""
    source = Path(path)
    with source.open(newline="", encoding="utf-8") as f:
        if source.suffix.lower() in {".jsonl", ".json", ".ndjson"}:
            records = [json.loads(line) for line in f if line.strip()]
        else:
            records = list(csv.DictReader(f))
    return [
        TruthRow(
            event_id=str(r["event_id"]),
            user_id=int(r["user_id"]),
            product_id=int(r["product_id"]),
            event_time=str(r["event_time"]),
            probability=float(r["probability"]),
            label=r["label"] in (True, 1, "1", "true", "True"),
            horizon_complete=r["horizon_complete"] in (True, 1, "1", "true", "True"),
        )
        for r in records
    ]
