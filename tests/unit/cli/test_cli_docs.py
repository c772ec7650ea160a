"""docs/cli.md is generated from the CLI; it must say what `rtml --help` says today."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "cli_docs.py"


def _module():
    spec = importlib.util.spec_from_file_location("cli_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_cli_md_matches_the_cli() -> None:
    module = _module()
    assert module.DOC.read_text() == module.render(), "docs/cli.md is stale: run python scripts/cli_docs.py"


def test_every_command_is_documented() -> None:
    text = _module().render()
    for command in ("rtml init", "rtml apply", "rtml demo", "rtml run engine", "rtml features get"):
        assert f"## `{command}`" in text
