"""The planted purchase probability: a known logistic function of streaming features.

At each ``cart`` event at time ``t`` of user ``u`` and product ``i`` the generator computes

    z = INTERCEPT + sum(COEFFICIENTS[name] * transformed feature)
    p = 1 / (1 + exp(-z))

from the features below, each over events with event time in ``[t - window, t)``
(strictly before the cart, exact window edges), and then draws whether ``u`` buys ``i``
within the hour. Every input is something a streaming feature pipeline can compute, so
``p`` is the best any model of these features can do: the oracle.

| feature                 | definition                                                  | transform |
|-------------------------|-------------------------------------------------------------|-----------|
| ``views_product_1h``    | views of ``i`` by ``u`` in the last hour                    | log1p     |
| ``views_product_1d``    | views of ``i`` by ``u`` in the last day                     | log1p     |
| ``carts_product_1d``    | earlier carts of ``i`` by ``u`` in the last day             | log1p     |
| ``purchases_user_30d``  | purchases (any product) by ``u`` in the last 30 days        | log1p     |
| ``views_user_10m``      | views (any product) by ``u`` in the last 10 minutes         | log1p     |
| ``price_ratio``         | cart price / mean price of ``i``'s events in the last 7 days | x - 1     |
| ``product_conversion_7d`` | purchases of ``i`` / (carts of ``i`` + 1), last 7 days    | x         |

``price_ratio`` is 1 when ``i`` had no event in the last 7 days (an on-demand feature:
the request's price over a windowed mean).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Hashable
from dataclasses import dataclass

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

INTERCEPT = -4.8
COEFFICIENTS: dict[str, float] = {
    "views_product_1h": 2.0,
    "views_product_1d": 0.5,
    "carts_product_1d": 1.2,
    "purchases_user_30d": 0.6,
    "views_user_10m": -0.8,
    "price_ratio": -8.0,
    "product_conversion_7d": 1.5,
}

VIEW, CART, REMOVE, PURCHASE = 0, 1, 2, 3
EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase")
EVENT_TYPE_CODES = {name: code for code, name in enumerate(EVENT_TYPES)}


@dataclass(frozen=True, slots=True)
class CartFeatures:
    """The inputs of the planted probability for one cart event."""

    views_product_1h: int
    views_product_1d: int
    carts_product_1d: int
    purchases_user_30d: int
    views_user_10m: int
    price_ratio: float
    product_conversion_7d: float

    def logit(self) -> float:
        c = COEFFICIENTS
        return (
            INTERCEPT
            + c["views_product_1h"] * math.log1p(self.views_product_1h)
            + c["views_product_1d"] * math.log1p(self.views_product_1d)
            + c["carts_product_1d"] * math.log1p(self.carts_product_1d)
            + c["purchases_user_30d"] * math.log1p(self.purchases_user_30d)
            + c["views_user_10m"] * math.log1p(self.views_user_10m)
            + c["price_ratio"] * (self.price_ratio - 1.0)
            + c["product_conversion_7d"] * self.product_conversion_7d
        )

    def probability(self) -> float:
        return 1.0 / (1.0 + math.exp(-self.logit()))


def _count(times: list[int] | None, start: int, end: int) -> int:
    """Number of entries of the sorted list ``times`` in ``[start, end)``."""
    if not times:
        return 0
    return bisect_left(times, end) - bisect_left(times, start)


class BehaviourState:
    """Event histories per key, enough to compute :class:`CartFeatures` at any time.

    Feed events in event-time order with :meth:`observe`; :meth:`features` looks only at
    events strictly before the time it is asked about, so feeding events after that time
    changes nothing. Users and products are any hashable keys (indices or ids).
    """

    def __init__(self) -> None:
        self._views: dict[tuple[Hashable, Hashable], list[int]] = {}
        self._carts: dict[tuple[Hashable, Hashable], list[int]] = {}
        self._user_views: dict[Hashable, list[int]] = {}
        self._user_purchases: dict[Hashable, list[int]] = {}
        self._product_carts: dict[Hashable, list[int]] = {}
        self._product_purchases: dict[Hashable, list[int]] = {}
        self._price_times: dict[Hashable, list[int]] = {}
        self._price_sums: dict[Hashable, list[float]] = {}  # prefix sums, starting at 0.0

    def observe(self, t: int, kind: int, user: Hashable, product: Hashable, price: float) -> None:
        """Record one valid event (``kind`` is VIEW, CART, REMOVE or PURCHASE)."""
        times = self._price_times.get(product)
        if times is None:
            self._price_times[product] = [t]
            self._price_sums[product] = [0.0, price]
        else:
            times.append(t)
            sums = self._price_sums[product]
            sums.append(sums[-1] + price)
        if kind == VIEW:
            self._views.setdefault((user, product), []).append(t)
            self._user_views.setdefault(user, []).append(t)
        elif kind == CART:
            self._carts.setdefault((user, product), []).append(t)
            self._product_carts.setdefault(product, []).append(t)
        elif kind == PURCHASE:
            self._user_purchases.setdefault(user, []).append(t)
            self._product_purchases.setdefault(product, []).append(t)

    def features(self, t: int, user: Hashable, product: Hashable, price: float) -> CartFeatures:
        """The features of a cart of ``product`` by ``user`` at ``t`` (ms) for ``price``."""
        views = self._views.get((user, product))
        ratio = 1.0
        times = self._price_times.get(product)
        if times:
            lo, hi = bisect_left(times, t - 7 * DAY_MS), bisect_left(times, t)
            if hi > lo:
                sums = self._price_sums[product]
                mean = (sums[hi] - sums[lo]) / (hi - lo)
                if mean > 0:
                    ratio = price / mean
        carts_7d = _count(self._product_carts.get(product), t - 7 * DAY_MS, t)
        purchases_7d = _count(self._product_purchases.get(product), t - 7 * DAY_MS, t)
        return CartFeatures(
            views_product_1h=_count(views, t - HOUR_MS, t),
            views_product_1d=_count(views, t - DAY_MS, t),
            carts_product_1d=_count(self._carts.get((user, product)), t - DAY_MS, t),
            purchases_user_30d=_count(self._user_purchases.get(user), t - 30 * DAY_MS, t),
            views_user_10m=_count(self._user_views.get(user), t - 10 * MINUTE_MS, t),
            price_ratio=ratio,
            product_conversion_7d=purchases_7d / (carts_7d + 1.0),
        )


def rank_auc(scores: list[float], labels: list[bool]) -> float:
    """Area under the ROC curve by the rank-sum formula (ties get their mean rank).

    Returns ``nan`` when one class is missing.
    """
    positives = sum(1 for y in labels if y)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = sorted(range(len(scores)), key=scores.__getitem__)
    rank_sum = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mean_rank = (i + j) / 2 + 1
        rank_sum += mean_rank * sum(1 for k in range(i, j + 1) if labels[order[k]])
        i = j + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
