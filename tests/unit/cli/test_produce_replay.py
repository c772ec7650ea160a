"""`rtml produce` and `rtml replay` through the CLI, into a file and a local event log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.sample_data import sample_csv
from typer.testing import CliRunner

from rtml.backends.event_log.base import LogRecord
from rtml.backends.registry import open_backend
from rtml.cli.main import app
from rtml.config import load_config
from rtml.datagen import generate, read_truth
from rtml.errors import InvalidInputError
from rtml.project import init_project

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = init_project(tmp_path / "shop")
    (root / "rtml.yaml").write_text("project: shop\nevent_log:\n  type: local\n  path: log.db\n")
    return root


def read_raw_topic(project: Path) -> list[LogRecord]:
    config = load_config(project, environ={})
    log = open_backend("event_log", config.event_log)
    records: list[LogRecord] = []
    try:
        consumer = log.consumer([config.topic("events.raw")], "test-probe")
        while batch := consumer.poll(5000, timeout=0.2):
            records.extend(batch)
        consumer.close()
    finally:
        log.close()
    return records


def test_produce_to_a_file_writes_the_generated_bytes(tmp_path: Path) -> None:
    out, truth = tmp_path / "events.jsonl", tmp_path / "truth.csv"
    args = ["produce", "--events", "3000", "--seed", "9", "--out", str(out), "--truth", str(truth)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    expected = generate(3000, seed=9)
    assert out.read_bytes() == b"".join(line + b"\n" for line in expected.lines)
    assert read_truth(truth) == expected.truth
    assert "produced" in result.output and "duplicates" in result.output
    assert "oracle AUC" in result.output


def test_produce_into_the_project_event_log(project: Path) -> None:
    result = runner.invoke(
        app, ["produce", "-n", "2500", "--seed", "1", "--dirty-rate", "0.04", "--project", str(project)]
    )
    assert result.exit_code == 0, result.output
    assert "shop.events.raw" in result.output
    records = read_raw_topic(project)
    assert len(records) == 2500
    assert {r.value for r in records} <= set(generate(2500, seed=1, dirty_rate=0.04).lines)
    keyed = [r for r in records if r.key is not None]
    assert len(keyed) > 0.9 * len(records)
    sample = keyed[0]
    assert sample.key == str(json.loads(sample.value)["user_id"]).encode()
    assert all(dict(r.headers)["source"] == b"events" for r in records)  # the source's name


def test_replay_csv_twice_sends_the_same_ids(project: Path) -> None:
    sample = sample_csv()
    for _ in range(2):
        result = runner.invoke(app, ["replay", "--csv", str(sample), "--project", str(project)])
        assert result.exit_code == 0, result.output
        assert "41" in result.output
    records = read_raw_topic(project)
    assert len(records) == 82
    ids = [json.loads(r.value)["event_id"] for r in records]
    assert len(set(ids)) == 41
    assert all(r.timestamp_ms is not None for r in records)


def test_replay_jsonl_with_a_limit(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    assert runner.invoke(app, ["produce", "-n", "500", "--out", str(out)]).exit_code == 0
    with out.open("ab") as f:
        f.write(b"\n   \n")  # blank lines are skipped
    result = runner.invoke(app, ["replay", "--file", str(out), "--project", str(project)])
    assert result.exit_code == 0, result.output
    assert len(read_raw_topic(project)) == 500
    limited = runner.invoke(app, ["replay", "-f", str(out), "--limit", "7", "--project", str(project)])
    assert limited.exit_code == 0, limited.output
    assert len(read_raw_topic(project)) == 507


@pytest.mark.parametrize(
    "args, message",
    [
        (["replay", "--csv", "does-not-exist.csv"], "no such file"),
        (["replay"], "exactly one of"),
        (["replay", "--csv", "a.csv", "--file", "b.jsonl"], "exactly one of"),
        (["produce", "--days", "2", "--rate", "5"], "not both"),
        (["produce", "--start", "2019-10-01T00:00:00"], "ISO-8601"),
    ],
)
def test_usage_errors_are_invalid_input(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert isinstance(result.exception, InvalidInputError)
    assert message in str(result.exception)


def test_replay_csv_with_a_wrong_header_sends_nothing(project: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    result = runner.invoke(app, ["replay", "--csv", str(bad), "--project", str(project)])
    assert isinstance(result.exception, InvalidInputError)
    assert "event_time,event_type,product_id" in str(result.exception)
    assert not (project / "log.db").exists()


def test_help_texts() -> None:
    for command in ("produce", "replay"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert "raw topic" in result.output
