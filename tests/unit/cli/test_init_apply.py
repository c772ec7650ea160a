from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from rtml.cli.main import app
from rtml.project import Project

runner = CliRunner(env={"COLUMNS": "200"})


def test_init_then_apply_records_the_plan(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    result = runner.invoke(app, ["init", str(project)])
    assert result.exit_code == 0, result.output
    assert (project / "rtml.yaml").is_file()
    assert (project / "schemas" / "event.schema.json").is_file()

    dry = runner.invoke(app, ["apply", "--project", str(project), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "purchase_1h" in dry.output and "new" in dry.output
    assert not (project / ".rtml" / "applied.json").exists()

    first = runner.invoke(app, ["apply", "--project", str(project)])
    assert first.exit_code == 0, first.output
    assert (project / ".rtml" / "applied.json").is_file()
    again = runner.invoke(app, ["apply", "--project", str(project), "--dry-run"])
    assert "unchanged" in again.output and " new " not in again.output

    features = project / "features.py"
    features.write_text(
        features.read_text().replace('windows=["5m", "1h", "1d"]', 'windows=["5m", "2h", "1d"]')
    )
    changed = runner.invoke(app, ["apply", "--project", str(project), "--dry-run"])
    assert "changed" in changed.output and "rtml backfill" in changed.output

    # apply created the pipeline's topics in the configured (local) event log
    loaded = Project.load(project, environ={})
    log = loaded.event_log()
    try:
        consumer = log.consumer([loaded.topic("events.raw")], "probe")
        assert consumer.poll(timeout=0.1) == []
        consumer.close()
    finally:
        log.close()


def test_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code != 0
    assert "not empty" in str(result.exception) + result.output


def test_apply_outside_a_project_says_what_to_do(tmp_path: Path) -> None:
    result = runner.invoke(app, ["apply", "--project", str(tmp_path)])
    assert result.exit_code != 0
    assert "rtml init" in str(result.exception)


def test_apply_registers_the_source_schema_in_the_embedded_registry(tmp_path: Path) -> None:
    from rtml.backends.schema_store import open_schema_store
    from rtml.services.registry.registry import SchemaRegistry

    project_dir = tmp_path / "shop"
    assert runner.invoke(app, ["init", str(project_dir)]).exit_code == 0
    for _ in range(2):  # idempotent: the same schema keeps its id and version
        result = runner.invoke(app, ["apply", "--project", str(project_dir)])
        assert result.exit_code == 0, result.output
    project = Project.load(project_dir, environ={})
    assert project.config.schema_registry.path.is_relative_to(project_dir.resolve())  # type: ignore[union-attr]
    store = open_schema_store(project.config.schema_registry)
    try:
        registry = SchemaRegistry(store)
        assert registry.subjects() == ["ecommerce.events.raw-value"]
        latest = registry.version("ecommerce.events.raw-value", "latest")
        assert latest.version == 1
        assert latest.schema.schema_type == "JSON"
        assert '"event_type"' in latest.schema.text
    finally:
        store.close()
