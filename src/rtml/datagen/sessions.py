"""The browsing model: session arrivals with daily and weekly cycles, and what users do
in a session (views, carts, removals, rare direct purchases).

This is the *skeleton* of the stream: everything except the purchases that follow carts,
which :mod:`rtml.datagen.ecommerce` adds by drawing from the planted probability.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from dataclasses import dataclass, field

import numpy as np

from rtml.datagen.catalog import Catalog
from rtml.datagen.planted import CART, DAY_MS, HOUR_MS, PURCHASE, REMOVE, VIEW

PEAK_HOUR_UTC = 19  # busiest hour of the day; the quietest is 12 hours away
DAILY_AMPLITUDE = 0.55  # arrival rate = mean x (1 + 0.55 cos(2 pi (hour - 19) / 24))
WEEKEND_FACTOR = 1.10  # Saturdays and Sundays are 10% busier
VISIT_CONTINUE = 0.62  # after each product, the session goes on to another with this chance
VIEW_CONTINUE = 0.5  # after each view, the user views the same product again with this chance
VIEW_GAP_MEAN_S = 40.0  # mean seconds between two views of one product
PRODUCT_GAP_MEAN_S = 75.0  # mean seconds before moving to the next product
FAVOURITE_CATEGORY = 0.7  # a session browses one of the user's two favourite categories
IN_CATEGORY = 0.8  # share of products picked in the session's category (else store-wide)
FROM_WISHLIST = 0.3  # chance a product is one the user carted or lingered on before
WISHLIST_SIZE = 8
CART_BASE = 0.10  # chance of a cart after a single view; x(1 + 0.6 (views - 1)), capped
CART_PROMO_FACTOR = 1.6
CART_WISHLIST_FACTOR = 1.8
REMOVE_AFTER_CART = 0.12  # chance a cart is followed by remove_from_cart 30 s - 10 min later
DIRECT_BUY = 0.012  # chance of a purchase right after views, without a cart (noise)
# Measured mean of events per session (browsing events and purchases); used to
# turn a wanted event count and span into a session arrival rate.
EVENTS_PER_SESSION = 6.1


@dataclass(slots=True)
class Skeleton:
    """The browsing events, in session order (sort by ``times`` for the stream)."""

    times: list[int] = field(default_factory=list)  # ms since epoch
    kinds: list[int] = field(default_factory=list)
    users: list[int] = field(default_factory=list)
    products: list[int] = field(default_factory=list)
    sessions: list[int] = field(default_factory=list)  # index into ``session_ids``
    session_ids: list[str] = field(default_factory=list)
    complete_until_ms: int = 0  # every browsing event before this time is here


def uuid_like(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` random 128-bit ids in the 8-4-4-4-12 hex form of the data set's sessions."""
    h = rng.bytes(16 * n).hex()
    return [
        f"{h[k : k + 8]}-{h[k + 8 : k + 12]}-{h[k + 12 : k + 16]}-{h[k + 16 : k + 20]}-{h[k + 20 : k + 32]}"
        for k in range(0, 32 * n, 32)
    ]


def cycle_factor(t_ms: int) -> float:
    """Relative session arrival rate at ``t_ms`` (mean about 1 over a week)."""
    hour = (t_ms % DAY_MS) / HOUR_MS
    weekday = (t_ms // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    weekly = WEEKEND_FACTOR if weekday >= 5 else (7 - 2 * WEEKEND_FACTOR) / 5
    return (1 + DAILY_AMPLITUDE * math.cos(2 * math.pi * (hour - PEAK_HOUR_UTC) / 24)) * weekly


class _Browser:
    """Writes sessions into a :class:`Skeleton`."""

    def __init__(self, catalog: Catalog, rnd: random.Random, start_ms: int, out: Skeleton) -> None:
        self.catalog = catalog
        self.rnd = rnd
        self.start_ms = start_ms
        self.out = out
        self.wishlists: dict[int, list[int]] = {}
        self.global_products = list(range(len(catalog.product_ids)))
        self.global_cum = [float(x) for x in np.cumsum(catalog.product_weights)]

    def _emit(self, t: int, kind: int, user: int, product: int, session: int) -> None:
        out = self.out
        out.times.append(t)
        out.kinds.append(kind)
        out.users.append(user)
        out.products.append(product)
        out.sessions.append(session)

    def _gap(self, mean_s: float, min_s: float) -> int:
        return int((min_s + self.rnd.expovariate(1.0 / mean_s)) * 1000)

    def _pick(self, category: int, wishlist: list[int]) -> tuple[int, bool]:
        rnd = self.rnd
        if wishlist and rnd.random() < FROM_WISHLIST:
            return wishlist[int(rnd.random() * len(wishlist))], True
        products, cum = self.catalog.category_products[category], None
        if products and rnd.random() < IN_CATEGORY:
            cum = self.catalog.category_cum_weights[category]
        else:
            products, cum = self.global_products, self.global_cum
        k = min(bisect(cum, rnd.random() * cum[-1]), len(products) - 1)
        return products[k], False

    def session(self, t: int, user: int, session: int) -> None:
        rnd, catalog = self.rnd, self.catalog
        favourites = catalog.user_categories[user]
        if rnd.random() < FAVOURITE_CATEGORY:
            category = favourites[0] if rnd.random() < 0.6 else favourites[1]
        else:
            category = int(rnd.random() * len(catalog.category_products))
        wishlist = self.wishlists.setdefault(user, [])
        while True:
            product, remembered = self._pick(category, wishlist)
            views = 1
            self._emit(t, VIEW, user, product, session)
            while rnd.random() < VIEW_CONTINUE and views < 12:
                t += self._gap(VIEW_GAP_MEAN_S, 2.0)
                self._emit(t, VIEW, user, product, session)
                views += 1
            day = (t - self.start_ms) // DAY_MS
            promo = catalog.on_promo(product, day)
            p_cart = CART_BASE * (1 + 0.6 * (views - 1))
            p_cart *= (CART_PROMO_FACTOR if promo else 1.0) * (CART_WISHLIST_FACTOR if remembered else 1.0)
            if rnd.random() < min(p_cart, 0.9):
                t += self._gap(10.0, 2.0)
                self._emit(t, CART, user, product, session)
                if rnd.random() < REMOVE_AFTER_CART:
                    t += int(rnd.uniform(30, 600) * 1000)
                    self._emit(t, REMOVE, user, product, session)
                if not remembered:
                    self._remember(wishlist, product)
            elif rnd.random() < DIRECT_BUY:
                t += self._gap(20.0, 5.0)
                self._emit(t, PURCHASE, user, product, session)
            elif views >= 3 and not remembered:
                self._remember(wishlist, product)
            if rnd.random() >= VISIT_CONTINUE:
                return
            t += self._gap(PRODUCT_GAP_MEAN_S, 3.0)

    @staticmethod
    def _remember(wishlist: list[int], product: int) -> None:
        wishlist.append(product)
        if len(wishlist) > WISHLIST_SIZE:
            del wishlist[0]


def build_skeleton(
    catalog: Catalog,
    rng: np.random.Generator,
    rnd: random.Random,
    *,
    start_ms: int,
    events_per_hour: float,
    min_events: int,
) -> Skeleton:
    """Sessions arriving from ``start_ms`` at ``events_per_hour`` (on average, shaped by
    the daily and weekly cycles) until at least ``min_events`` browsing events lie before
    ``complete_until_ms``."""
    out = Skeleton()
    browser = _Browser(catalog, rnd, start_ms, out)
    sessions_per_hour = events_per_hour / EVENTS_PER_SESSION
    # Chunks of at most an hour, and small enough to overshoot the target by little.
    chunk_ms = HOUR_MS
    if events_per_hour * 20 > min_events:
        chunk_ms = max(1000, int(HOUR_MS * min_events / (20 * events_per_hour)))
    user_cdf = np.cumsum(catalog.user_weights)
    n_users = len(catalog.user_ids)
    buckets: dict[int, int] = {}
    complete = 0
    chunk = 0
    while complete < min_events:
        t0 = start_ms + chunk * chunk_ms
        mean = sessions_per_hour * chunk_ms / HOUR_MS * cycle_factor(t0 + chunk_ms // 2)
        k = int(rng.poisson(mean))
        offsets = np.sort(rng.integers(0, chunk_ms, k))
        users = np.minimum(np.searchsorted(user_cdf, rng.random(k), side="right"), n_users - 1)
        ids = uuid_like(rng, k)
        first = len(out.times)
        for offset, user, sid in zip(offsets.tolist(), users.tolist(), ids, strict=True):
            out.session_ids.append(sid)
            browser.session(t0 + offset, user, len(out.session_ids) - 1)
        for t in out.times[first:]:
            b = (t - start_ms) // chunk_ms
            buckets[b] = buckets.get(b, 0) + 1
        complete += buckets.pop(chunk, 0)
        chunk += 1
    out.complete_until_ms = start_ms + chunk * chunk_ms
    return out
