"""Point-in-time training sets on DuckDB: the e-commerce example's 20 features.

    python bench/training_set.py [--events 11000000] [--spine-rows 1000000] [--repeat 2]

For each ``--events`` size (repeatable): the generator's clean stream of that many events
is validated and loaded into the embedded store once (cached under
``bench/.rtml/training_set/``, not timed), then two builds are timed, end to end through
``rtml.offline.build_training_set`` (query + Arrow result + types):

* ``label``  the label's own spine: every cart event (about 9.2% of the events);
* ``file``   a user spine of ``--spine-rows`` rows: (user, product) pairs of cart events
             at random times over the stream (a Parquet file, read and normalized).

The goal (issue 4) is 1,000,000 spine rows x 20 features in <= 10 s. Feast's
``get_historical_features`` on the same data is bench/feast_training_set.py.
Prints a table and writes ``bench/results/training_set.json``.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import report

from rtml.datagen import generate
from rtml.offline import build_training_set, event_tables, load_events, offline_store
from rtml.project import Project, init_project

CACHE = Path(__file__).resolve().parent / ".rtml" / "training_set"
MODEL = "purchase_1h"


def prepared(events: int, seed: int) -> tuple[Project, dict[str, Any]]:
    """The example project with ``events`` generated events loaded (reused when cached)."""
    root = CACHE / f"{events}-{seed}"
    project = Project.load(root, environ={}) if (root / "rtml.yaml").exists() else None
    if project is not None:
        store = offline_store(project)
        rows = store.stats(event_tables(project)["events"]).rows
        store.close()
        if rows > 0.95 * events:
            return project, {"cached": True, "stored_events": rows}
    shutil.rmtree(root, ignore_errors=True)
    project = Project.load(init_project(root), environ={})
    t0 = time.perf_counter()
    stream = generate(events, seed=seed, dirty_rate=0)
    generate_s = time.perf_counter() - t0
    lines = stream.lines
    del stream
    t0 = time.perf_counter()
    summary = load_events(project, lines)
    load_s = time.perf_counter() - t0
    del lines
    gc.collect()
    print(
        f"loaded {summary.appended:,} events (generate {generate_s:.0f} s, validate + append {load_s:.0f} s)"
    )
    return project, {"cached": False, "stored_events": summary.appended, "load_s": round(load_s, 1)}


def user_spine(project: Project, rows: int, seed: int) -> Path:
    """A spine file of ``rows`` (user, product, time) rows at random times."""
    store = offline_store(project)
    events = store.read(event_tables(project)["events"])
    store.close()
    carts = events.filter(pa.compute.equal(events.column("event_type"), "cart"))
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, carts.num_rows, rows)
    ts = events.column("ts_ms").to_numpy()
    times = rng.integers(int(ts.min()), int(ts.max()), rows)
    spine = pa.table(
        {
            "user_id": carts.column("user_id").take(pick),
            "product_id": carts.column("product_id").take(pick),
            "ts_ms": pa.array(times, pa.int64()),
        }
    )
    path = project.root / f"spine-{rows}.parquet"
    pq.write_table(spine, path)
    return path


def timed(project: Project, spine: Path | None, repeat: int) -> tuple[list[float], int]:
    runs, rows = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        table = build_training_set(project, MODEL, spine)
        runs.append(time.perf_counter() - t0)
        rows = table.num_rows
        del table
    return runs, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, action="append", help="stream size (repeatable)")
    parser.add_argument("--spine-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = args.events or [11_000_000]
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    for events in sizes:
        project, info = prepared(events, args.seed)
        spine = user_spine(project, args.spine_rows, args.seed)
        for kind, path in (("label", None), ("file", spine)):
            runs, n = timed(project, path, args.repeat)
            best = min(runs)
            key = f"{events}/{kind}"
            results[key] = {
                **info,
                "spine": kind,
                "rows": n,
                "features": 20,
                "seconds": [round(r, 2) for r in runs],
                "best_s": round(best, 2),
                "median_s": round(statistics.median(runs), 2),
                "rows_per_s": round(n / best),
            }
            rows.append(
                [f"{kind} spine", f"{info['stored_events']:,}", f"{n:,}", 20, round(best, 2), round(n / best)]
            )
            print(f"{key}: {n:,} rows in {', '.join(f'{r:.2f}' for r in runs)} s", flush=True)
    report(
        "training_set",
        "Training set (DuckDB): the example's 20 features, best of --repeat",
        ["spine", "events stored", "rows", "features", "seconds", "rows/s"],
        rows,
        {
            "benchmark": "training_set",
            "model": MODEL,
            "goal": "1,000,000 spine rows x 20 features in <= 10 s",
            "versions": {"duckdb": version("duckdb"), "pyarrow": version("pyarrow")},
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
