"""`rtml demo` at a small size: every stage that exists runs, the summary has DESIGN.md's keys."""

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
    assert list(summary["stages"]) == ["project", "generate", "ingest", "validate", "features", "train"]
    assert summary["features"]["views"] == 3
    assert summary["features"]["events_per_s"] > 0
    training = summary["training"]
    assert training["trials"] == 2 and training["model_version"] == "1"
    assert 0.5 < training["test_auc"] <= 1 and 0.5 < training["oracle_auc"] <= 1
    assert training["rows"] > 100

    # a second run in the same directory starts from an empty pipeline, not on top of the first
    again = CliRunner().invoke(
        app,
        ["demo", "--dir", str(tmp_path / "demo"), "--events", "4000", "--trials", "1", "--summary", str(out)],
    )
    assert again.exit_code == 0, again.output
    assert json.loads(out.read_text())["events"]["produced"] == 4000
