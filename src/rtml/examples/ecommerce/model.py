"""The label and the model: will this user buy this product within the hour after a cart?"""

from entities import product, user
from features import (
    price_vs_product_mean,
    product_conversion,
    product_stats,
    user_activity,
    user_product,
)
from sources import events

from rtml import Choice, FloatParam, IntParam, Label, Model

buys_within_1h = Label(
    name="buys_within_1h",
    source=events,
    entities=[user, product],
    prediction_where="event_type = 'cart'",
    outcome_where="event_type = 'purchase'",
    horizon="1h",
)

purchase_model = Model(
    name="purchase_1h",
    label=buys_within_1h,
    features=[
        user_activity,
        product_stats,
        user_product,
        price_vs_product_mean,
        product_conversion,
    ],
    params={"objective": "binary:logistic", "tree_method": "hist", "n_estimators": 300},
    search_space={
        "max_depth": IntParam(low=3, high=8),
        "learning_rate": FloatParam(low=0.02, high=0.3, log=True),
        "min_child_weight": FloatParam(low=1.0, high=20.0, log=True),
        "subsample": FloatParam(low=0.6, high=1.0),
        "grow_policy": Choice(values=("depthwise", "lossguide")),
    },
    metric="roc_auc",
)
