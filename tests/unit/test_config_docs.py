"""docs/configuration-reference.md is generated from the config models; it must match them."""

import importlib.util
from pathlib import Path

from rtml.config import RtmlConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "config_docs.py"


def _module():
    spec = importlib.util.spec_from_file_location("config_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_matches_the_models() -> None:
    module = _module()
    assert module.DOC.read_text() == module.render(), (
        "docs/configuration-reference.md is stale: run python scripts/config_docs.py"
    )


def test_every_top_level_key_and_backend_is_listed() -> None:
    text = _module().render()
    for key in RtmlConfig.model_fields:
        assert f"| `{key}` |" in text
    for section in (
        "`event_log` with `type: kafka`",
        "`online_store` with `type: redis`",
        "`trainer` with `type: ray`",
    ):
        assert f"### {section}" in text


def test_comments_above_fields_become_the_meaning() -> None:
    class Example:  # a stand-in class whose source the parser reads
        # first line
        # second line
        alpha: int = 1
        beta: int = 2

    comments = _module().field_comments(Example)
    assert comments == {"alpha": "first line second line"}
