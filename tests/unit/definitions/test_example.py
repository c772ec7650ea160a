"""The shipped e-commerce example loads and has the shape the issues ask for."""

from __future__ import annotations

import shutil
from pathlib import Path

from rtml.definitions.loader import load_definitions
from rtml.project import EXAMPLE_DIR


def test_example_loads_with_enough_features() -> None:
    defs = load_definitions(EXAMPLE_DIR)
    assert set(defs.feature_views) == {"user_activity", "product_stats", "user_product"}
    model = defs.model("purchase_1h")
    view_features = [n for n in model.feature_names if "__" in n]
    assert len(view_features) >= 15
    windows = {f.window for v in defs.feature_views.values() for f in v.features}
    assert min(windows).total_seconds() == 5 * 60
    assert max(windows).days == 30
    assert model.request_fields == {"price": "double"}
    assert model.label.horizon_span.total_seconds() == 3600


def test_fingerprint_is_stable_and_tracks_meaning(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(EXAMPLE_DIR, project, ignore=shutil.ignore_patterns(".rtml", "__pycache__"))
    first = load_definitions(project)
    again = load_definitions(project)
    assert first.fingerprint() == again.fingerprint()
    fp_view = first.feature_view("product_stats").fingerprint()

    features = project / "features.py"
    features.write_text(
        features.read_text().replace(
            'windows=["1h", "1d"], name="views"),\n        Aggregation(function="count", where=CART, windows=["7d"]',
            'windows=["2h", "1d"], name="views"),\n        Aggregation(function="count", where=CART, windows=["7d"]',
        )
    )
    changed = load_definitions(project)
    assert changed.feature_view("product_stats").fingerprint() != fp_view
    assert (
        changed.feature_view("user_activity").fingerprint()
        == first.feature_view("user_activity").fingerprint()
    )
    assert changed.fingerprint() != first.fingerprint()


def test_entity_key_change_changes_dependent_views(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(EXAMPLE_DIR, project, ignore=shutil.ignore_patterns(".rtml", "__pycache__"))
    before = load_definitions(project).feature_view("user_activity").fingerprint()
    entities = project / "entities.py"
    entities.write_text(entities.read_text().replace('description="A shopper"', 'description="Someone"'))
    assert load_definitions(project).feature_view("user_activity").fingerprint() == before
