"""rtml's training set against Feast's get_historical_features, same data, same values.

    bash bench/feast/setup.sh        # once: bench/.venv-feast with Feast (its own pins)
    python bench/feast_training_set.py [--events 300000] [--spine-rows 1000000] [--repeat 2]

What each side computes, on the example project (``purchase_1h``: 18 windowed features of
three views, 2 on-demand features) and the same generated events:

* **rtml** -- ``build_training_set`` from the raw events in the DuckDB store: every window
  aggregation (``[floor(t - w, hop), t)``), the on-demand features and the label, for each
  spine row. Timed end to end.
* **Feast** (local provider, default file offline store, ``FileSource`` Parquet) --
  ``get_historical_features`` on the same spine: the point-in-time as-of join of each
  view's feature rows (the latest row with ``event_timestamp <= t`` per key), then counts
  NULL -> 0 and the 2 on-demand features in pandas. Timed in Feast's own environment
  (bench/.venv-feast). Feast's local provider has no sliding windows, so "the same
  meaning" needs the windowed values precomputed as its feature rows: for every key, a
  row at every point where a value can change -- ``ts + 1`` after each event (windows
  hold events strictly before ``t``) and ``floor(ts, hop) + hop + w`` when that event's
  tile leaves window ``w`` -- with the values rtml computes there. That precomputation
  (rtml builds over those points) is reported, not counted in Feast's time: it is the
  work Feast leaves to a pipeline upstream. The label is rtml's only.

The values of both are compared on every row (integers exactly, floats within 1e-9
relative). Prints a table and writes ``bench/results/feast_training_set.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from common import report
from training_set import CACHE, MODEL, prepared

from rtml.backends.offline_store.arrow import normalize_spine
from rtml.core.pit import TrainingSetPlan
from rtml.offline import build_training_set, event_tables, offline_store, training_plan
from rtml.project import Project

BENCH = Path(__file__).resolve().parent
FEAST_PYTHON = BENCH / ".venv-feast" / "bin" / "python"


def spine_file(project: Project, rows: int, seed: int) -> Path:
    """``rows`` (user, product, price) of random cart events, at random times over the stream."""
    store = offline_store(project)
    events = store.read(event_tables(project)["events"])
    store.close()
    carts = events.filter(pc.equal(events.column("event_type"), "cart"))
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, carts.num_rows, rows)
    ts = events.column("ts_ms").to_numpy()
    spine = pa.table(
        {
            "user_id": carts.column("user_id").take(pick),
            "product_id": carts.column("product_id").take(pick),
            "price": carts.column("price").take(pick),
            "ts_ms": pa.array(rng.integers(int(ts.min()), int(ts.max()), rows), pa.int64()),
        }
    )
    path = project.root / f"feast-spine-{rows}.parquet"
    pq.write_table(spine, path)
    return path


def view_plan(plan: TrainingSetPlan, view: str) -> TrainingSetPlan:
    groups = tuple(g for g in plan.groups if g.view == view)
    names = tuple(w.name for g in groups for a in g.aggs for w in a.windows)
    return dataclasses.replace(plan, groups=groups, on_demand=(), request={}, feature_names=names)


def change_points(db: Path, plan: TrainingSetPlan, view: str, label_keys: tuple[str, ...]) -> pa.Table:
    """Every (key, t) where a feature of ``view`` can change value, as a spine (other label
    keys -1: no events, so they touch nothing of this view)."""
    groups = [g for g in plan.groups if g.view == view]
    keys = groups[0].keys
    key_list = ", ".join(keys)
    not_null = " AND ".join(f"{k} IS NOT NULL" for k in keys)
    # a first row per key, before any spine time, with the empty windows' values: Feast's
    # file store drops an entity row whose key has feature rows but none before its time
    parts = [
        f"SELECT {key_list}, (SELECT MIN(ts_ms) FROM events_events) AS t FROM events_events WHERE {not_null}",
        f"SELECT {key_list}, ts_ms + 1 AS t FROM events_events WHERE {not_null}",
    ]
    for g in groups:
        h = g.hop_ms
        for w in sorted({w.window_ms for a in g.aggs for w in a.windows}):
            parts.append(
                f"SELECT {key_list}, ts_ms - (((ts_ms % {h}) + {h}) % {h}) + {h + w} AS t "
                f"FROM events_events WHERE {not_null}"
            )
    others = ", ".join(f"-1::BIGINT AS {k}" for k in label_keys if k not in keys)
    select = f"SELECT DISTINCT {key_list}, t AS ts_ms{', ' + others if others else ''}"
    con = duckdb.connect(str(db), read_only=True)
    try:
        last = con.execute("SELECT MAX(ts_ms) FROM events_events").fetchall()[0][0]
        table: pa.Table = con.sql(
            f"{select} FROM ({' UNION ALL '.join(parts)}) AS u WHERE t <= {last}"
        ).to_arrow_table()
    finally:
        con.close()
    return table


def feature_kinds(plan: TrainingSetPlan, view: str) -> list[tuple[str, str]]:
    out = []
    for g in plan.groups:
        if g.view != view:
            continue
        for a in g.aggs:
            kind = "number" if a.function == "mean" or a.column_kind == "number" else "integer"
            out += [(w.name.split("__", 1)[1], kind) for w in a.windows]
    return out


def precompute(project: Project, plan: TrainingSetPlan, work: Path) -> dict[str, Any]:
    """The Feast feature rows of each view, computed by rtml at every change point."""
    store = offline_store(project)
    db = store.path  # type: ignore[attr-defined]
    views: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for view in dict.fromkeys(g.view for g in plan.groups):
        t0 = time.perf_counter()
        sub = view_plan(plan, view)
        points = change_points(db, plan, view, plan.label.keys)
        spine, _ = normalize_spine(points, sub)
        table = store.training_set(sub, spine=spine, include_incomplete=True)
        keys = next(g.keys for g in plan.groups if g.view == view)
        kinds = feature_kinds(plan, view)
        columns = {k: table.column(k) for k in keys}
        columns["event_timestamp"] = table.column("event_time")
        for name, _ in kinds:
            columns[name] = table.column(f"{view}__{name}")
        pq.write_table(pa.table(columns), work / f"{view}.parquet")
        views[view] = {"keys": list(keys), "features": kinds}
        info[view] = {"rows": table.num_rows, "seconds": round(time.perf_counter() - t0, 1)}
        print(f"precomputed {view}: {table.num_rows:,} feature rows in {info[view]['seconds']} s", flush=True)
    store.close()
    (work / "views.json").write_text(json.dumps(views))
    return info


def compare(ours: pa.Table, theirs: pa.Table, names: list[str]) -> dict[str, int]:
    """Values that differ, per feature, rows matched by ``spine_row``; ``missing_rows``: the
    spine rows one side lacks."""
    a = ours.sort_by("spine_row")
    b = theirs.sort_by("spine_row")
    keep = pc.is_in(a.column("spine_row"), value_set=b.column("spine_row"))
    missing = a.num_rows - pc.sum(keep).as_py() + b.num_rows - pc.sum(keep).as_py()
    a = a.filter(keep)
    b = b.filter(pc.is_in(b.column("spine_row"), value_set=a.column("spine_row")))
    bad: dict[str, int] = {"missing_rows": missing}
    for name in names:
        n = 0
        for u, v in zip(a.column(name).to_pylist(), b.column(name).to_pylist(), strict=True):
            u_null = u is None or (isinstance(u, float) and math.isnan(u))
            v_null = v is None or (isinstance(v, float) and math.isnan(v))
            if u_null or v_null:
                n += u_null != v_null
            elif isinstance(u, float) or isinstance(v, float):
                n += not math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-12)
            else:
                n += u != v
        bad[name] = n
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--spine-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--feast-timeout", type=int, default=600, help="seconds per Feast run")
    parser.add_argument(
        "--feast-store", action="append", choices=["file", "duckdb"], help="Feast offline store(s)"
    )
    args = parser.parse_args()
    args.feast_store = args.feast_store or ["duckdb", "file"]
    if not FEAST_PYTHON.exists():
        sys.exit(f"{FEAST_PYTHON} is missing. Fix: bash bench/feast/setup.sh")
    project, info = prepared(args.events, args.seed)
    plan = training_plan(project, MODEL)
    spine = spine_file(project, args.spine_rows, args.seed)
    work = CACHE / f"feast-{args.events}-{args.spine_rows}"
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("*"):
        old.unlink()

    runs = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ours = build_training_set(project, MODEL, spine, include_incomplete=True)
        runs.append(time.perf_counter() - t0)
    print(f"rtml: {ours.num_rows:,} rows in {', '.join(f'{r:.2f}' for r in runs)} s", flush=True)

    pre = precompute(project, plan, work)
    raw = pq.read_table(spine)
    entity = pa.table(
        {
            "spine_row": pa.array(range(raw.num_rows), pa.int64()),
            "user_id": raw.column("user_id"),
            "product_id": raw.column("product_id"),
            "price": raw.column("price"),
            "event_timestamp": raw.column("ts_ms").cast(pa.timestamp("ms", tz="UTC")),
        }
    )
    pq.write_table(entity, work / "entity.parquet")
    names = list(plan.feature_names)
    best = min(runs)
    rows: list[list[Any]] = [
        [
            "rtml build_training_set (from raw events)",
            f"{ours.num_rows:,}",
            len(names),
            round(best, 2),
            "-",
            "-",
        ]
    ]
    feast: dict[str, Any] = {}
    for kind in args.feast_store:
        timing = run_feast(work, kind, args.feast_timeout)
        if timing is None:
            rows.append([f"Feast ({kind} offline store)", "-", "-", f"> {args.feast_timeout}", "-", "-"])
            feast[kind] = {"timed_out_after_s": args.feast_timeout}
            continue
        theirs = pq.read_table(work / f"feast_result-{kind}.parquet")
        bad = compare(ours, theirs, names)
        seconds = timing["get_historical_features_s"]
        feast[kind] = {**timing, "mismatches": bad, "all_equal": not any(bad.values())}
        rows.append(
            [
                f"Feast get_historical_features ({kind} offline store)",
                f"{timing['rows']:,}",
                timing["features"],
                seconds,
                f"{seconds / best:.1f}x",
                "yes" if not any(bad.values()) else f"{sum(bad.values()):,} values differ",
            ]
        )
        print(f"feast {kind}: mismatches per feature:", {k: v for k, v in bad.items() if v} or "none")
    report(
        "feast_training_set",
        f"Training set: rtml vs Feast, {info['stored_events']:,} events, {args.spine_rows:,}-row spine",
        ["what", "rows", "features", "seconds", "Feast / rtml", "values equal"],
        rows,
        {
            "benchmark": "feast_training_set",
            "model": MODEL,
            "stored_events": info["stored_events"],
            "spine_rows": args.spine_rows,
            "rtml_seconds": [round(r, 2) for r in runs],
            "feast": feast,
            "precomputed_feature_rows": pre,
        },
    )


def run_feast(work: Path, kind: str, timeout: int) -> dict[str, Any] | None:
    """Feast's timing with offline store ``kind``, or None when it ran past ``timeout``."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run(  # noqa: S603 -- our own script in our own venv
            [str(FEAST_PYTHON), str(BENCH / "feast" / "run_feast.py"), str(work), kind],
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        print(f"feast {kind}: no result within {timeout} s", flush=True)
        return None
    if done.returncode != 0:
        sys.exit(f"the Feast side ({kind}) failed (exit {done.returncode})")
    print(f"feast {kind}: process {time.perf_counter() - t0:.1f} s", flush=True)
    timing: dict[str, Any] = json.loads((work / f"feast_timing-{kind}.json").read_text())
    return timing


if __name__ == "__main__":
    main()
