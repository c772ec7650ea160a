"""The Feast side of bench/feast_training_set.py; runs in bench/.venv-feast (Feast's own pins).

    bench/.venv-feast/bin/python bench/feast/run_feast.py WORKDIR [file|duckdb]

WORKDIR holds what the rtml side wrote: ``views.json`` (per feature view: its join keys
and features), ``<view>.parquet`` (the precomputed feature rows: keys, ``event_timestamp``
and one column per feature) and ``entity.parquet`` (the spine: ``spine_row``, the keys,
``event_timestamp``). This script makes a Feast repo there (local provider, a
``FileSource`` per view, the offline store named: ``file`` -- the default, dask -- or
``duckdb`` -- Feast's ibis/DuckDB one), applies it, then times
``get_historical_features(entity_df, features, full_feature_names=True).to_df()`` -- the
point-in-time as-of join -- plus the two on-demand features in pandas, and writes
``feast_result-<store>.parquet`` and ``feast_timing-<store>.json``.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig
from feast.repo_config import RegistryConfig
from feast.types import Float64, Int64
from feast.value_type import ValueType


def main() -> None:
    work = Path(sys.argv[1]).resolve()
    kind = sys.argv[2] if len(sys.argv) > 2 else "file"
    views = json.loads((work / "views.json").read_text())
    config = RepoConfig(
        project="rtml_bench",
        provider="local",
        registry=RegistryConfig(path=str(work / f"registry-{kind}.db")),
        online_store={"type": "sqlite", "path": str(work / "online.db")},
        offline_store={"type": kind},
        entity_key_serialization_version=3,
        repo_path=str(work),
    )
    store = FeatureStore(config=config)
    entities = {
        key: Entity(name=key, join_keys=[key], value_type=ValueType.INT64)
        for view in views.values()
        for key in view["keys"]
    }
    objects: list[object] = list(entities.values())
    refs: list[str] = []
    for name, view in views.items():
        source = FileSource(
            name=f"{name}_source",
            path=str(work / f"{name}.parquet"),
            timestamp_field="event_timestamp",
        )
        schema = [Field(name=f, dtype=Float64 if kind == "number" else Int64) for f, kind in view["features"]]
        objects.append(
            FeatureView(
                name=name,
                entities=[entities[k] for k in view["keys"]],
                ttl=timedelta(days=3650),  # no TTL cut: the precomputed rows carry the window semantics
                schema=schema,
                source=source,
                online=False,
            )
        )
        refs += [f"{name}:{f}" for f, _ in view["features"]]
    store.apply(objects)

    entity_df = pd.read_parquet(work / "entity.parquet")
    t0 = time.perf_counter()
    df = store.get_historical_features(entity_df=entity_df, features=refs, full_feature_names=True).to_df()
    join_s = time.perf_counter() - t0
    # What a Feast user adds: counts are 0 before a key's first row (Feast gives NULL), and
    # the two on-demand features of the model.
    counts = [f"{n}__{f}" for n, v in views.items() for f, kind in v["features"] if kind == "integer"]
    df[counts] = df[counts].fillna(0).astype("int64")
    df["price_vs_product_mean"] = df["price"] / df["product_stats__price_7d"].replace(0, float("nan"))
    df["product_conversion_7d"] = df["product_stats__purchases_7d"] / (df["product_stats__carts_7d"] + 1.0)
    total_s = time.perf_counter() - t0
    df.to_parquet(work / f"feast_result-{kind}.parquet", index=False)
    import feast

    (work / f"feast_timing-{kind}.json").write_text(
        json.dumps(
            {
                "get_historical_features_s": round(join_s, 2),
                "with_post_processing_s": round(total_s, 2),
                "offline_store": kind,
                "rows": len(df),
                "features": len(refs) + 2,
                "versions": {"feast": feast.__version__, "pandas": pd.__version__},
            }
        )
    )


if __name__ == "__main__":
    main()
