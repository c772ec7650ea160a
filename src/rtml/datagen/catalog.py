"""The synthetic store: categories, brands, products with price levels and promotions, users.

Everything here is drawn once from a seeded numpy ``Generator``; the session model
(:mod:`rtml.datagen.sessions`) and the purchase simulation use it read-only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

# (category_code or None, 19-digit category_id, median price, brands), in the style of the
# public data set, where about a third of the events have no category_code.
CATEGORIES: tuple[tuple[str | None, int, float, tuple[str, ...]], ...] = (
    (
        "electronics.smartphone",
        2053013555631882655,
        320.0,
        ("samsung", "apple", "xiaomi", "huawei", "oppo"),
    ),
    (
        "electronics.audio.headphone",
        2053013554658804075,
        70.0,
        ("sony", "apple", "samsung", "jbl", "xiaomi"),
    ),
    ("electronics.video.tv", 2053013554415534427, 420.0, ("samsung", "lg", "sony", "philips")),
    ("electronics.clocks", 2053013553853497655, 150.0, ("casio", "apple", "samsung", "garmin")),
    ("computers.notebook", 2053013558920217191, 620.0, ("lenovo", "hp", "asus", "acer", "apple")),
    ("computers.peripherals.mouse", 2053013553375346967, 25.0, ("logitech", "a4tech", "defender")),
    (
        "appliances.kitchen.washer",
        2053013563810775923,
        380.0,
        ("samsung", "lg", "bosch", "indesit"),
    ),
    (
        "appliances.kitchen.refrigerators",
        2053013563835941749,
        540.0,
        ("samsung", "lg", "bosch", "atlant"),
    ),
    (
        "appliances.environment.vacuum",
        2053013563173241677,
        140.0,
        ("samsung", "philips", "bosch", "dyson"),
    ),
    ("appliances.personal.hair_cutter", 2053013554088379263, 35.0, ("philips", "braun", "polaris")),
    (
        "construction.tools.light",
        2232732093077520756,
        90.0,
        ("bosch", "makita", "xiaomi", "dewalt"),
    ),
    ("furniture.living_room.sofa", 2053013560144951911, 450.0, ("ikea", "askona")),
    ("apparel.shoes", 2053013558031024687, 80.0, ("nike", "adidas", "puma", "reebok")),
    ("kids.toys", 2053013553031414015, 30.0, ("lego", "hasbro", "mattel")),
    ("auto.accessories.player", 2053013566209917945, 60.0, ("pioneer", "sony", "kenwood")),
    ("sport.bicycle", 2053013557477376525, 300.0, ("stels", "stern", "forward")),
    (None, 2103807459595387724, 60.0, ("xiaomi", "samsung", "sony", "huawei")),
    (None, 2053013552326770905, 25.0, ("lucente", "elari", "bosch")),
    (None, 2137704919962927629, 15.0, ("karcher", "vitek", "tefal")),
    (None, 2055161088059638328, 110.0, ("lg", "philips", "redmond")),
)

PRODUCT_ZIPF_EXPONENT = 1.1  # popularity of the product of rank r is proportional to r**-1.1
BRANDLESS_SHARE = 0.12  # share of products without a brand (null)
PRICE_SIGMA = 0.5  # log-normal spread of base prices around the category median
PROMO_DAY_PROBABILITY = 0.15  # chance that a product is on promotion on a given day
PROMO_FACTOR_RANGE = (0.70, 0.95)  # promotional price = base price x U(0.70, 0.95)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Products and users, indexed 0..n-1; ids are the realistic integers of the data set."""

    product_ids: list[int]
    product_category: list[int]  # index into CATEGORIES
    product_json: list[str]  # '"product_id":..,"category_id":..,"category_code":..,"brand":..'
    product_weights: np.ndarray  # global popularity (sums to 1)
    category_products: list[list[int]]  # product indices of each category, by popularity
    category_cum_weights: list[list[float]]  # cumulative popularity within the category
    category_weights: np.ndarray  # share of traffic per category (sums to 1)
    prices: list[list[float]]  # prices[product][day] (promotions applied, 2 decimals)
    base_prices: list[float]  # price without promotion
    user_ids: list[int]
    user_weights: np.ndarray  # activity: how often each user starts a session (sums to 1)
    user_categories: list[tuple[int, int]]  # two favourite categories per user

    def price(self, product: int, day: int) -> float:
        row = self.prices[product]
        return row[min(max(day, 0), len(row) - 1)]

    def on_promo(self, product: int, day: int) -> bool:
        return self.price(product, day) < self.base_prices[product]


def _unique_ints(rng: np.random.Generator, low: int, high: int, size: int) -> list[int]:
    picked = rng.choice(high - low, size=size, replace=False) + low
    return [int(x) for x in picked]


def build_catalog(rng: np.random.Generator, *, n_products: int, n_users: int, n_days: int) -> Catalog:
    """Draw a store of ``n_products`` products and ``n_users`` users with prices for
    ``n_days`` days (later days reuse the last one)."""
    n_cat = len(CATEGORIES)
    category_weights = rng.dirichlet(np.full(n_cat, 2.0))
    product_category = rng.choice(n_cat, size=n_products, p=category_weights)
    ranks = rng.permutation(n_products) + 1
    product_weights = ranks.astype(np.float64) ** -PRODUCT_ZIPF_EXPONENT
    product_weights /= product_weights.sum()
    product_ids = _unique_ints(rng, 1_000_000, 100_000_000, n_products)

    medians = np.array([c[2] for c in CATEGORIES])[product_category]
    base = np.maximum(1.0, medians * np.exp(rng.normal(0.0, PRICE_SIGMA, n_products)))
    promo = rng.random((n_products, n_days)) < PROMO_DAY_PROBABILITY
    factor = np.where(promo, rng.uniform(*PROMO_FACTOR_RANGE, (n_products, n_days)), 1.0)
    prices = np.round(base[:, None] * factor, 2)

    brand_u = rng.random(n_products)
    brand_pick = rng.random(n_products)
    product_json = []
    for i in range(n_products):
        code, cat_id, _, brands = CATEGORIES[int(product_category[i])]
        brand = None
        if brand_u[i] >= BRANDLESS_SHARE:
            # Zipf-like brand share within the category: the first brand is the biggest.
            w = np.arange(1, len(brands) + 1, dtype=np.float64) ** -1.0
            brand = brands[int(np.searchsorted(np.cumsum(w / w.sum()), brand_pick[i]))]
        product_json.append(
            f'"product_id":{product_ids[i]},"category_id":{cat_id},'
            f'"category_code":{json.dumps(code)},"brand":{json.dumps(brand)}'
        )

    category_products: list[list[int]] = []
    category_cum_weights: list[list[float]] = []
    for c in range(n_cat):
        members = np.flatnonzero(product_category == c)
        members = members[np.argsort(-product_weights[members], kind="stable")]
        category_products.append([int(m) for m in members])
        category_cum_weights.append([float(x) for x in np.cumsum(product_weights[members])])

    user_weights = rng.lognormal(0.0, 1.0, n_users)
    user_weights /= user_weights.sum()
    favourites = rng.choice(n_cat, size=(n_users, 2), p=category_weights)
    return Catalog(
        product_ids=product_ids,
        product_category=[int(c) for c in product_category],
        product_json=product_json,
        product_weights=product_weights,
        category_products=category_products,
        category_cum_weights=category_cum_weights,
        category_weights=category_weights,
        prices=prices.tolist(),
        base_prices=np.round(base, 2).tolist(),
        user_ids=_unique_ints(rng, 510_000_000, 600_000_000, n_users),
        user_weights=user_weights,
        user_categories=[(int(a), int(b)) for a, b in favourites],
    )
