"""``rtml run registry``: the command's wiring (serving is tested in integration)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rtml.cli import registry_cmd
from rtml.errors import ConfigError
from rtml.project import EXAMPLE_DIR

runner = CliRunner(env={"COLUMNS": "200"})


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.command("noop")
    def noop() -> None:
        """A second command, so typer keeps sub-commands by name."""

    registry_cmd.register(app)
    return app


def test_run_registry_is_listed() -> None:
    result = runner.invoke(make_app(), ["run", "--help"])
    assert result.exit_code == 0, result.output
    assert "registry" in result.output
    help_text = runner.invoke(make_app(), ["run", "registry", "--help"]).output
    assert "--host" in help_text and "--port" in help_text and "--project" in help_text


def test_run_group_is_shared_by_services() -> None:
    app = typer.Typer()
    first = registry_cmd.run_group(app)
    assert registry_cmd.run_group(app) is first
    assert [g.name for g in app.registered_groups] == ["run"]


def test_an_external_registry_is_not_run(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    shutil.copytree(EXAMPLE_DIR, root, ignore=shutil.ignore_patterns(".rtml", "__pycache__"))
    with (root / "rtml.yaml").open("a") as f:
        f.write("schema_registry: {type: external, url: http://registry.example:8081}\n")
    result = runner.invoke(make_app(), ["run", "registry", "--project", str(root)])
    assert isinstance(result.exception, ConfigError)
    assert "external" in str(result.exception) and "http://registry.example:8081" in str(result.exception)


def test_config_section_defaults_and_types(tmp_path: Path) -> None:
    from rtml.backends.schema_store import (
        EmbeddedSchemaRegistryConfig,
        ExternalSchemaRegistryConfig,
        PostgresSchemaRegistryConfig,
    )
    from rtml.config import load_config

    default = load_config(tmp_path, environ={}).schema_registry
    assert isinstance(default, EmbeddedSchemaRegistryConfig)
    assert default.registry_url == "http://127.0.0.1:8081"
    (tmp_path / "rtml.yaml").write_text("schema_registry: {path: reg/r.db, port: 9000}\n")
    embedded = load_config(tmp_path, environ={}).schema_registry
    assert isinstance(embedded, EmbeddedSchemaRegistryConfig)
    assert embedded.path == tmp_path.resolve() / "reg" / "r.db" and embedded.port == 9000
    pg = load_config(tmp_path, environ={"RTML_SCHEMA_REGISTRY__TYPE": "postgres"}).schema_registry
    assert isinstance(pg, PostgresSchemaRegistryConfig) and pg.namespace == "rtml_registry"
    (tmp_path / "rtml.yaml").write_text("schema_registry: {type: external, url: 'http://r:8081/'}\n")
    external = load_config(tmp_path, environ={}).schema_registry
    assert isinstance(external, ExternalSchemaRegistryConfig) and external.registry_url == "http://r:8081"
    (tmp_path / "rtml.yaml").write_text("schema_registry: {type: external, path: x}\n")
    with pytest.raises(ConfigError, match="schema_registry.external.path"):
        load_config(tmp_path, environ={})


def test_an_external_registry_has_no_store() -> None:
    from rtml.backends.schema_store import ExternalSchemaRegistryConfig, open_schema_store

    with pytest.raises(ConfigError, match="rtml runs none"):
        open_schema_store(ExternalSchemaRegistryConfig(url="http://r:8081"))
