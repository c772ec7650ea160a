"""Streaming features: what a user does, how a product sells, and the two together."""

from entities import product, user
from sources import events

from rtml import Aggregation, FeatureView, OnDemandFeature

VIEW = "event_type = 'view'"
CART = "event_type = 'cart'"
PURCHASE = "event_type = 'purchase'"

user_activity = FeatureView(
    name="user_activity",
    entities=[user],
    source=events,
    aggregations=[
        Aggregation(function="count", where=VIEW, windows=["10m", "1h", "1d"], name="views"),
        Aggregation(function="count", where=CART, windows=["1d", "7d"], name="carts"),
        Aggregation(function="count", where=PURCHASE, windows=["30d"], hop="1h", name="purchases"),
        Aggregation(
            function="count_distinct",
            column="product_id",
            where=VIEW,
            windows=["1h"],
            name="products_viewed",
        ),
        Aggregation(function="mean", column="price", where=VIEW, windows=["7d"], name="viewed_price"),
    ],
)

product_stats = FeatureView(
    name="product_stats",
    entities=[product],
    source=events,
    aggregations=[
        Aggregation(function="count", where=VIEW, windows=["1h", "1d"], name="views"),
        Aggregation(function="count", where=CART, windows=["7d"], name="carts"),
        Aggregation(function="count", where=PURCHASE, windows=["7d"], name="purchases"),
        Aggregation(function="mean", column="price", windows=["7d"], name="price"),
    ],
)

user_product = FeatureView(
    name="user_product",
    entities=[user, product],
    source=events,
    aggregations=[
        Aggregation(function="count", where=VIEW, windows=["5m", "1h", "1d"], name="views"),
        Aggregation(function="count", where=CART, windows=["1d"], name="carts"),
        Aggregation(
            function="count",
            where="event_type = 'remove_from_cart'",
            windows=["1d"],
            name="removes",
        ),
    ],
)

price_vs_product_mean = OnDemandFeature(
    name="price_vs_product_mean",
    expression="price / NULLIF(product_stats__price_7d, 0)",
    request={"price": "double"},
    description="The price asked now against the product's mean price over 7 days",
)

product_conversion = OnDemandFeature(
    name="product_conversion_7d",
    expression="product_stats__purchases_7d / (product_stats__carts_7d + 1.0)",
    description="Purchases per cart of the product over 7 days (smoothed)",
)
