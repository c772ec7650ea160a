"""`rtml demo` at a small size: every stage runs, the summary has DESIGN.md's keys, the report
is written; with --live-seconds 0 the live stages are skipped. The quality bounds are
tests/e2e/test_demo_quality.py's."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rtml.cli.main import app

DESIGN_KEYS = {
    "events": {"produced", "valid", "invalid", "duplicates", "late"},
    "features": {"views", "freshness_p50_ms", "freshness_p99_ms", "events_per_s"},
    "training": {"rows", "test_auc", "oracle_auc", "no_stream_features_auc", "model_version", "trials"},
    "serving": {"requests", "errors", "p50_ms", "p99_ms"},
    "monitoring": {"online_auc", "max_psi", "alerts"},
}


def test_demo_runs_and_writes_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--dir",
            str(tmp_path / "demo"),
            "--events",
            "5000",
            "--seed",
            "3",
            "--trials",
            "2",
            "--live-seconds",
            "5",
            "--summary",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    for section, keys in DESIGN_KEYS.items():
        assert set(summary[section]) == keys
    events = summary["events"]
    assert events["produced"] == 5000
    assert events["valid"] + events["invalid"] + events["duplicates"] == events["produced"]
    assert events["invalid"] > 0 and events["duplicates"] > 0  # the generator's dirty mix arrived
    assert summary["wall_seconds"] > 0
    # the embedded shape: every role on its embedded backend (--scale: tests/e2e/test_demo_scale.py)
    assert summary["backends"] == {
        "event_log": "local", "schema_registry": "embedded", "dead_letter": "table",
        "offline_store": "duckdb", "online_store": "sqlite", "trainer": "local",
        "tracking": "mlflow_local", "serving": "uvicorn",
    }  # fmt: skip
    assert summary["dead_letters"] == {"topic": None, "indexed": None}  # no indexer embedded
    skew = summary["skew"]
    assert skew["rows"] is None or 0 <= skew["rows_differing"] <= skew["rows"]
    assert list(summary["stages"]) == [
        "project",
        "generate",
        "ingest",
        "validate",
        "features",
        "train",
        "serve",
        "live",
        "monitor",
        "report",
    ]
    features = summary["features"]
    assert features["views"] == 3
    assert features["events_per_s"] > 0
    assert 0 < features["freshness_p50_ms"] <= features["freshness_p99_ms"]
    training = summary["training"]
    assert training["trials"] == 2 and training["model_version"] == "1"
    assert 0.5 < training["test_auc"] <= 1 and 0.5 < training["oracle_auc"] <= 1
    assert training["rows"] > 100
    serving = summary["serving"]
    assert serving["requests"] > 0 and serving["errors"] == 0
    assert 0 < serving["p50_ms"] <= serving["p99_ms"]
    monitoring = summary["monitoring"]
    assert monitoring["max_psi"] >= 0 and monitoring["alerts"] >= 0
    assert monitoring["online_auc"] is None or 0 <= monitoring["online_auc"] <= 1
    report = (tmp_path / "demo" / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 6  # 4 training plots, scores, PSI
    assert "serving.requests" in report
    logged = list((tmp_path / "demo" / ".rtml" / "predictions").glob("**/*.parquet"))
    assert logged  # every prediction went to the prediction log

    # a second run in the same directory starts from an empty pipeline, not on top of the first
    again = CliRunner().invoke(
        app,
        [
            "demo",
            "--dir",
            str(tmp_path / "demo"),
            "--events",
            "4000",
            "--trials",
            "1",
            "--live-seconds",
            "0",
            "--summary",
            str(out),
        ],
    )
    assert again.exit_code == 0, again.output
    second = json.loads(out.read_text())
    assert second["events"]["produced"] == 4000
    # no live phase: no server, nothing served or monitored, and the keys say so
    assert second["serving"] == {"requests": None, "errors": None, "p50_ms": None, "p99_ms": None}
    assert second["monitoring"] == {"online_auc": None, "max_psi": None, "alerts": None}
    assert second["skew"] == {"rows": None, "rows_differing": None, "online_oracle_auc": None}
    assert not (tmp_path / "demo" / ".rtml" / "predictions").exists()
