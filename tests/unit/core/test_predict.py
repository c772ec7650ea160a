"""The predictor: request checks, feature vectors in the version's order, XGBoost scores."""

from __future__ import annotations

import ast
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from rtml.backends.tracking.base import LoadedModel
from rtml.core.predict import ModelMismatchError, Predictor, RequestSpec, request_spec
from rtml.definitions.model import Model
from rtml.errors import InvalidInputError
from rtml.project import Project
from rtml.testing import example_project

MODEL = "purchase_1h"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return example_project(tmp_path_factory.mktemp("predict") / "shop", event_log="memory")


@pytest.fixture(scope="module")
def model(project: Project) -> Model:
    return project.definitions.models[MODEL]


@pytest.fixture(scope="module")
def spec(project: Project, model: Model) -> RequestSpec:
    return request_spec(model, project.definitions.schemas)


def train(names: list[str], seed: int = 0) -> bytes:
    """A small real booster on ``names``: the label follows the first two features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, len(names))).astype(np.float32)
    x[rng.random(size=x.shape) < 0.1] = np.nan
    y = (np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 1]) > 0).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": seed},
        xgb.DMatrix(x, label=y, feature_names=names),
        num_boost_round=10,
    )
    return bytes(booster.save_raw("ubj"))


def loaded(names: list[str], version: str = "1", model: str = MODEL) -> LoadedModel:
    return LoadedModel(
        model=model,
        version=version,
        booster=train(names),
        feature_names=tuple(names),
        definitions_fingerprint="x",
    )


@pytest.fixture(scope="module")
def predictor(model: Model, spec: RequestSpec) -> Predictor:
    return Predictor.from_loaded(loaded(model.feature_names), model, spec)


def test_the_spec_types_keys_by_the_source_schema_and_request_fields_by_their_declaration(
    spec: RequestSpec,
) -> None:
    assert spec.keys == (("user_id", "integer"), ("product_id", "integer"))
    assert spec.request == (("price", "number"),)
    schema = spec.json_schema()
    assert schema["required"] == ["user_id", "product_id", "price"]
    assert schema["properties"]["user_id"]["type"] == "integer"
    assert schema["properties"]["price"]["type"] == ["number", "null"]
    assert schema["additionalProperties"] is False


def test_a_good_row_is_typed(predictor: Predictor) -> None:
    assert predictor.validate_row({"user_id": 7, "product_id": 9.0, "price": 3}) == {
        "user_id": 7,
        "product_id": 9,
        "price": 3.0,
    }
    assert predictor.validate_row({"user_id": 7, "product_id": 9, "price": None})["price"] is None


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ({"product_id": 1, "price": 1.0}, "body.user_id", "missing"),
        ({"user_id": None, "product_id": 1, "price": 1.0}, "body.user_id", "null"),
        ({"user_id": "7", "product_id": 1, "price": 1.0}, "body.user_id", "an integer"),
        ({"user_id": True, "product_id": 1, "price": 1.0}, "body.user_id", "an integer"),
        ({"user_id": 1.5, "product_id": 1, "price": 1.0}, "body.user_id", "an integer"),
        ({"user_id": 1, "product_id": 1}, "body.price", "missing"),
        ({"user_id": 1, "product_id": 1, "price": "cheap"}, "body.price", "a number"),
        ({"user_id": 1, "product_id": 1, "price": [1]}, "body.price", "a number"),
        ({"user_id": 1, "product_id": 1, "price": 1.0, "prodcut_id": 2}, "body.prodcut_id", "unknown field"),
    ],
)
def test_bad_rows_name_the_field(predictor: Predictor, row: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        predictor.validate_row(row)
    assert str(caught.value).startswith(field + ":")
    assert words in str(caught.value)
    assert caught.value.http_status == 400


def test_rows_are_named_by_their_index(predictor: Predictor) -> None:
    good = {"user_id": 1, "product_id": 2, "price": 1.0}
    with pytest.raises(InvalidInputError, match=r"^rows\[1\]\.product_id: "):
        predictor.validate([good, {"user_id": 1, "price": 1.0}])
    with pytest.raises(InvalidInputError, match=r"^rows\[0\] must be a JSON object"):
        predictor.validate([[1, 2]])
    with pytest.raises(InvalidInputError, match="must be a list"):
        predictor.validate({"user_id": 1})


def test_the_matrix_follows_the_versions_order_not_the_rows(model: Model, spec: RequestSpec) -> None:
    names = list(reversed(model.feature_names))[:5]
    p = Predictor.from_loaded(loaded(names), model, spec)
    row = {name: float(i) for i, name in enumerate(model.feature_names)}
    row[names[1]] = None
    row[names[2]] = True
    row[names[3]] = "text"
    m = p.matrix([row, {}])
    assert m.dtype == np.float32 and m.shape == (2, 5)
    assert m[0, 0] == row[names[0]]
    assert math.isnan(m[0, 1]) and m[0, 2] == 1.0 and math.isnan(m[0, 3])
    assert m[0, 4] == row[names[4]]
    assert np.isnan(m[1]).all()


def test_scores_equal_xgboost_on_the_same_rows(predictor: Predictor, model: Model) -> None:
    rng = np.random.default_rng(5)
    names = model.feature_names
    rows = [{n: (None if rng.random() < 0.2 else float(rng.normal())) for n in names} for _ in range(50)]
    got = predictor.score(rows)
    reference = xgb.Booster()
    reference.load_model(bytearray(train(names)))
    x = np.array([[np.nan if r[n] is None else r[n] for n in names] for r in rows], dtype=np.float32)
    want = reference.predict(xgb.DMatrix(x, feature_names=names))
    assert len(got) == 50 and all(0.0 <= s <= 1.0 for s in got)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert len(set(got)) > 5  # the features matter
    assert predictor.score([]) == []


def test_features_of_gives_the_model_inputs_in_order(predictor: Predictor, model: Model) -> None:
    row = {name: 1.0 for name in model.feature_names} | {"_missing": [], model.feature_names[0]: math.nan}
    served = predictor.features_of(row)
    assert list(served) == model.feature_names
    assert served[model.feature_names[0]] is None


def test_a_version_trained_on_other_features_is_refused(model: Model, spec: RequestSpec) -> None:
    with pytest.raises(ModelMismatchError, match="no longer produce: user_activity__gone"):
        Predictor.from_loaded(loaded([*model.feature_names[:3], "user_activity__gone"]), model, spec)
    with pytest.raises(ModelMismatchError, match="returned model 'other'"):
        Predictor.from_loaded(loaded(model.feature_names, model="other"), model, spec)


def test_predictor_imports_no_web_framework_or_backend() -> None:
    tree = ast.parse((Path(__file__).parents[3] / "src/rtml/core/predict.py").read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "xgboost" in imported and "numpy" in imported
    bad = {m for m in imported if m.startswith(("fastapi", "starlette", "rtml.backends", "rtml.services"))}
    assert not bad


def test_one_row_scores_like_xgboost_on_the_native_path(predictor: Predictor, model: Model) -> None:
    """``score_one`` (XGBoost's C API on a per-thread buffer) gives ``inplace_predict``'s
    scores, in any thread, and takes rows with None, booleans and missing features."""
    assert predictor._native is not None  # this XGBoost has the fast path
    names = model.feature_names
    rng = np.random.default_rng(9)
    rows = [
        {n: (None if rng.random() < 0.2 else float(rng.gamma(1.0, 2.0))) for n in names} for _ in range(20)
    ]
    rows.append({n: True for n in names})
    rows.append({names[0]: 3.0, names[1]: "text"})  # absent and non-numeric features: missing
    reference = xgb.Booster()
    reference.load_model(bytearray(train(names)))
    want = reference.inplace_predict(predictor.matrix(rows)).tolist()
    assert [predictor.score_one(r) for r in rows] == pytest.approx(want, rel=1e-6)
    assert predictor.score([rows[3]]) == pytest.approx([want[3]], rel=1e-6)
    assert len(set(want)) > 5
    from_threads: dict[int, list[float]] = {}

    def score_in_thread(k: int) -> None:
        from_threads[k] = [predictor.score_one(r) for r in rows]

    threads = [threading.Thread(target=score_in_thread, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(got == pytest.approx(want, rel=1e-6) for got in from_threads.values())


def test_the_matrix_of_many_rows_is_the_row_by_row_one(predictor: Predictor, model: Model) -> None:
    names = model.feature_names
    rng = np.random.default_rng(3)
    rows = [{n: (None if rng.random() < 0.3 else float(rng.normal())) for n in names} for _ in range(100)]
    rows[7][names[2]] = False
    fast = predictor.matrix(rows)
    slow = np.array([[math.nan if r[n] is None else float(r[n]) for n in names] for r in rows], np.float32)
    np.testing.assert_array_equal(fast, slow)
    assert predictor.matrix([]).shape == (0, len(names))
