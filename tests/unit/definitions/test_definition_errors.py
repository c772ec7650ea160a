"""Every mistake a user can make in a definition gives a DefinitionError that names
the file, the object, the field and the fix. One row per mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtml.definitions.loader import load_definitions
from rtml.errors import DefinitionError

SCHEMA = {
    "type": "object",
    "properties": {
        "event_id": {"type": "string"},
        "event_time": {"type": "string", "format": "date-time"},
        "event_type": {"type": "string"},
        "user_id": {"type": "integer"},
        "product_id": {"type": "integer"},
        "brand": {"type": ["string", "null"]},
        "price": {"type": "number"},
    },
}

BASE = {
    "entities.py": """
from rtml import Entity
user = Entity(name="user", join_keys=["user_id"])
product = Entity(name="product", join_keys=["product_id"])
""",
    "sources.py": """
from rtml import Source
events = Source(name="events", schema="event.json", rules=["price >= 0"])
""",
    "features.py": """
from rtml import Aggregation, FeatureView, OnDemandFeature
from entities import user, product
from sources import events
user_activity = FeatureView(name="user_activity", entities=[user], source=events, aggregations=[
    Aggregation(function="count", windows=["1h", "1d"], where="event_type = 'view'", name="views"),
    Aggregation(function="sum", column="price", windows=["1d"]),
])
ratio = OnDemandFeature(name="ratio", expression="price / (user_activity__sum_price_1d + 1)",
                        request={"price": "double"})
""",
    "model.py": """
from rtml import Label, Model, IntParam
from entities import user, product
from sources import events
from features import user_activity, ratio
label = Label(name="buys", source=events, entities=[user, product], horizon="1h",
              prediction_where="event_type = 'cart'", outcome_where="event_type = 'purchase'")
model = Model(name="m", label=label, features=[user_activity, ratio],
              search_space={"max_depth": IntParam(low=2, high=6)})
""",
}

AGG = 'Aggregation(function="count", windows=["1h", "1d"], where="event_type = \'view\'", name="views")'


def _case(file: str, old: str, new: str) -> dict[str, str]:
    assert old in BASE[file], old
    return {file: BASE[file].replace(old, new)}


# (case id, files to change, fragments the message must contain: file, object, field, fix)
CASES = [
    ("bad name", _case("entities.py", 'name="user"', 'name="User Id"'),
     ["entities.py:3", "Entity 'User Id'", "name", "lower-case letters"]),
    ("empty join keys", _case("entities.py", '["product_id"]', "[]"),
     ["entities.py:4", "join_keys", "at least one join key"]),
    ("bad duration", _case("features.py", '["1h", "1d"]', '["1 hour"]'),
     ["features.py:6", "Aggregation 'views'", "windows", "'1 hour' is not a duration", "'5m'"]),
    ("window shorter than hop", _case("features.py", '["1h", "1d"], where', '["1h"], hop="2h", where'),
     ["features.py:6", "windows", "shorter than the hop", "Fix: make the hop at most"]),
    ("unknown function", _case("features.py", 'function="sum"', 'function="median"'),
     ["features.py:7", "function", "unknown function 'median'", "count_distinct"]),
    ("function without column", _case("features.py", 'function="sum", column="price"', 'function="sum"'),
     ["features.py:7", "column", "sum needs a column"]),
    ("bad sql", _case("features.py", "where=\"event_type = 'view'\"", 'where="event_type = = 1"'),
     ["features.py:6", "where", "not a valid SQL expression"]),
    ("aggregate in where", _case("features.py", "where=\"event_type = 'view'\"", 'where="sum(price) > 1"'),
     ["features.py:6", "where", "uses SUM", "per-row expression"]),
    ("engine-specific function", _case("features.py", "where=\"event_type = 'view'\"", 'where="md5(brand) = 1"'),
     ["features.py:6", "calls MD5()", "use one of ABS"]),
    ("unknown column", _case("features.py", 'column="price"', 'column="cost"'),
     ["features.py:5", "FeatureView 'user_activity'", "column 'cost' is not in the schema", "use one of"]),
    ("numeric function on a string", _case("features.py", 'column="price"', 'column="brand"'),
     ["features.py:5", "function", "needs a numeric column but 'brand' is string"]),
    ("where on unknown column", _case("features.py", "where=\"event_type = 'view'\"", "where=\"kind = 'view'\""),
     ["features.py:5", "where", "unknown column(s) kind"]),
    ("duplicate feature", _case("features.py", 'function="sum", column="price", windows=["1d"]',
                                'function="count", windows=["1h"], name="views"'),
     ["features.py:5", "aggregations", "two aggregations give the feature 'views_1h'"]),
    ("duplicate name across files", {"more.py": f"""
from rtml import Aggregation, FeatureView
from entities import user
from sources import events
user_activity = FeatureView(name="user_activity", entities=[user], source=events, aggregations=[{AGG}])
"""}, ["more.py:5", "the name 'user_activity' is used twice", "rename one"]),
    ("label horizon not positive", _case("model.py", 'horizon="1h"', 'horizon="0s"'),
     ["model.py:6", "Label 'buys'", "horizon", "must be positive"]),
    ("label where unknown column", _case("model.py", "event_type = 'cart'", "kind = 'cart'"),
     ["model.py:6", "prediction_where", "unknown column(s) kind"]),
    ("feature of another entity", _case("model.py", "entities=[user, product]", "entities=[product]"),
     ["model.py:8", "Model 'm'", "keyed by user_id", "add the entity with key 'user_id'"]),
    ("on-demand reads unknown feature", _case("features.py", "user_activity__sum_price_1d", "user_activity__nope_1d"),
     ["features.py:9", "OnDemandFeature 'ratio'", "expression", "reads user_activity__nope_1d"]),
    ("on-demand bad request type", _case("features.py", '"price": "double"', '"price": "float"'),
     ["features.py:9", "request", "unknown type 'float'", "double"]),
    ("request field not in source", _case("features.py", '"price": "double"', '"price": "double", "coupon": "double"'),
     ["features.py:9", "request field 'coupon' is not a column"]),
    ("search space low >= high", _case("model.py", "low=2, high=6", "low=6, high=2"),
     ["model.py:8", "search_space", "low >= high"]),
    ("unknown metric", _case("model.py", 'search_space=', 'metric="accuracy", search_space='),
     ["model.py:8", "metric", "unknown metric 'accuracy'", "roc_auc"]),
    ("source timestamp not in schema", _case("sources.py", 'schema="event.json"', 'schema="event.json", timestamp_field="ts"'),
     ["sources.py:3", "timestamp_field", "column 'ts' is not in the schema"]),
    ("missing schema file", _case("sources.py", 'schema="event.json"', 'schema="nope.json"'),
     ["sources.py:3", "Source 'events'", "schema", "does not exist"]),
    ("schema not a schema file", _case("sources.py", 'schema="event.json"', 'schema="event.txt"'),
     ["sources.py:3", "schema", "ending in .json"]),
    ("python error", {"broken.py": "x = 1\nraise RuntimeError('boom')\n"},
     ["broken.py:2", "importing failed: RuntimeError: boom"]),
]  # fmt: skip


def _write_project(root: Path, changes: dict[str, str]) -> Path:
    (root / "event.json").write_text(json.dumps(SCHEMA))
    for name, text in {**BASE, **changes}.items():
        (root / name).write_text(text)
    return root


def test_base_project_loads(tmp_path: Path) -> None:
    defs = load_definitions(_write_project(tmp_path, {}))
    assert defs.model("m").feature_names == [
        "user_activity__views_1h",
        "user_activity__views_1d",
        "user_activity__sum_price_1d",
        "ratio",
    ]


@pytest.mark.parametrize(("case", "changes", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_definition_error(tmp_path: Path, case: str, changes: dict[str, str], fragments: list[str]) -> None:
    with pytest.raises(DefinitionError) as info:
        load_definitions(_write_project(tmp_path, changes))
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{case}: {fragment!r} not in {message!r}"
    assert "Fix:" in message
