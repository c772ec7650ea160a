"""`rtml dataset load` and `rtml dataset build` through the CLI, on the embedded DuckDB store."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from rtml.cli.main import app
from rtml.datagen import generate
from rtml.project import init_project

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def loaded(tmp_path: Path) -> Path:
    root = init_project(tmp_path / "shop")
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(line + b"\n" for line in generate(4000, seed=11).lines))
    result = runner.invoke(app, ["dataset", "load", str(events), "--project", str(root)])
    assert result.exit_code == 0, result.output
    assert "appended (new)" in result.output and "invalid (not stored)" in result.output
    again = runner.invoke(app, ["dataset", "load", str(events), "--project", str(root)])
    assert again.exit_code == 0, again.output
    assert re.search(r"appended \(new\)\s*│\s*0\s*│", again.output)  # a second load adds nothing
    return root


def test_build_writes_the_training_set_and_a_summary(loaded: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "train.parquet"
    result = runner.invoke(
        app, ["dataset", "build", "-m", "purchase_1h", "--out", str(out), "-p", str(loaded)]
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows > 50
    assert table.column_names[:4] == ["event_id", "user_id", "product_id", "event_time"]
    assert table.column_names[-1] == "label"
    assert len(table.column_names) == 4 + 1 + 20 + 1  # keys/time, request field, 20 features, label
    for word in ("rows", "positives", "features", "20", f"{table.num_rows:,}"):
        assert word in result.output


def test_build_with_a_spine_file(loaded: Path, tmp_path: Path) -> None:
    spine = tmp_path / "spine.csv"
    spine.write_text("user_id,product_id,event_time\n1,2,2019-10-02T00:00:00Z\n3,4,2019-10-03T12:30:00Z\n")
    out = tmp_path / "spine.parquet"
    args = [
        "dataset",
        "build",
        "-m",
        "purchase_1h",
        "--spine",
        str(spine),
        "--out",
        str(out),
        "-p",
        str(loaded),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out).to_pylist()
    assert [r["spine_row"] for r in rows] == [0, 1]
    assert rows[0]["user_activity__views_1d"] == 0 and rows[0]["label"] == 0  # unknown keys: defaults
    assert rows[0]["price"] is None


def test_build_refuses_bad_input(loaded: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["dataset", "build", "-m", "nope", "--out", str(tmp_path / "x.parquet"), "-p", str(loaded)]
    )
    assert result.exit_code != 0
    assert "no model named 'nope'" in str(result.exception)
    result = runner.invoke(
        app, ["dataset", "build", "-m", "purchase_1h", "--out", str(tmp_path / "x.csv"), "-p", str(loaded)]
    )
    assert result.exit_code != 0 and ".parquet" in str(result.exception)
    spine = tmp_path / "bad.csv"
    spine.write_text("user_id,event_time\n1,2019-10-02T00:00:00Z\n")
    args = [
        "dataset",
        "build",
        "-m",
        "purchase_1h",
        "--spine",
        str(spine),
        "--out",
        str(tmp_path / "y.parquet"),
    ]
    result = runner.invoke(app, [*args, "-p", str(loaded)])
    assert result.exit_code != 0 and "product_id" in str(result.exception)


def test_build_on_an_empty_store_says_to_load_first(tmp_path: Path) -> None:
    root = init_project(tmp_path / "empty")
    result = runner.invoke(
        app, ["dataset", "build", "-m", "purchase_1h", "--out", str(tmp_path / "e.parquet"), "-p", str(root)]
    )
    assert result.exit_code != 0 and "load events first" in str(result.exception)
