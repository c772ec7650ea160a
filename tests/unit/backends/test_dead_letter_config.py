"""The dead-letter record's checks, the typed configs and the ``dead_letter`` settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rtml.backends.dead_letter import DeadLetter, open_dead_letter_sink
from rtml.backends.dead_letter.base import MAX_MESSAGE_CHARS
from rtml.backends.dead_letter.config import (
    KafkaDeadLetterConfig,
    MemoryDeadLetterConfig,
    OpenSearchDeadLetterConfig,
    TableDeadLetterConfig,
    for_project,
)
from rtml.backends.dead_letter.table import TableDeadLetterSink
from rtml.config import load_config
from rtml.errors import ConfigError, InvalidInputError

GOOD = {
    "raw": b"\xff",
    "code": "not_json",
    "message": "m",
    "field_path": None,
    "topic": "p.events.raw",
    "partition": 0,
    "offset": 3,
    "received_ms": 1_700_000_000_000,
}


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("raw", "text", "raw must be bytes"),
        ("code", "", "code must be a non-empty string"),
        ("topic", "", "source topic"),
        ("partition", -1, "partition must be an integer >= 0"),
        ("offset", True, "offset must be an integer >= 0"),
        ("offset", 1.5, "offset must be an integer >= 0"),
        ("received_ms", 10**16, "milliseconds since the epoch"),
        ("key", "k", "key must be bytes or None"),
    ],
)
def test_a_bad_letter_is_refused_with_the_field_named(field: str, value: object, says: str) -> None:
    with pytest.raises(InvalidInputError, match=says):
        DeadLetter(**{**GOOD, field: value})  # type: ignore[arg-type]


def test_text_is_made_valid_utf8_and_bounded() -> None:
    got = DeadLetter(**{**GOOD, "message": "bad \udcff" + "x" * 10_000, "field_path": "$.\ud800"})  # type: ignore[arg-type]
    got.message.encode("utf-8")
    assert len(got.message) == MAX_MESSAGE_CHARS and got.message.endswith("…")
    assert got.field_path == "$.?"
    assert got.position == ("p.events.raw", 0, 3)
    assert got.document_id == "p.events.raw-0-3"


def test_project_names_fill_what_the_config_leaves_out(tmp_path: Path) -> None:
    kwargs = {"project": "shop", "data_dir": tmp_path / ".rtml"}
    assert for_project(TableDeadLetterConfig(), **kwargs).path == tmp_path / ".rtml" / "dead_letters.db"  # type: ignore[union-attr]
    assert for_project(KafkaDeadLetterConfig(), **kwargs).topic == "shop.events.invalid"  # type: ignore[union-attr]
    assert for_project(OpenSearchDeadLetterConfig(), **kwargs).index_prefix == "shop-dead-letters"  # type: ignore[union-attr]
    assert for_project(KafkaDeadLetterConfig(topic="mine"), **kwargs).topic == "mine"  # type: ignore[union-attr]
    assert for_project(MemoryDeadLetterConfig(), **kwargs) == MemoryDeadLetterConfig()


def test_rtml_yaml_defaults_to_the_table_under_data_dir(tmp_path: Path) -> None:
    (tmp_path / "rtml.yaml").write_text("project: shop\ndata_dir: state\n")
    config = load_config(tmp_path, environ={})
    assert config.dead_letter == TableDeadLetterConfig()

    sink = open_dead_letter_sink(config.dead_letter, project=config.project, data_dir=config.data_dir)
    assert isinstance(sink, TableDeadLetterSink)
    assert sink.path == tmp_path / "state" / "dead_letters.db"
    sink.close()


def test_rtml_yaml_and_environment_pick_the_search_sink(tmp_path: Path) -> None:
    (tmp_path / "rtml.yaml").write_text(
        "dead_letter:\n  type: opensearch\n  url: https://search.example.com:9200/\n  username: rtml\n"
    )
    config = load_config(tmp_path, environ={"RTML_DEAD_LETTER__PASSWORD": "s3cret"})
    assert isinstance(config.dead_letter, OpenSearchDeadLetterConfig)
    assert config.dead_letter.url == "https://search.example.com:9200"
    assert config.dead_letter.password is not None
    assert config.dead_letter.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config.dead_letter)

    switched = load_config(tmp_path, environ={"RTML_DEAD_LETTER__TYPE": "kafka"})
    assert isinstance(switched.dead_letter, KafkaDeadLetterConfig)


def test_a_table_path_in_rtml_yaml_is_relative_to_the_project(tmp_path: Path) -> None:
    (tmp_path / "rtml.yaml").write_text("dead_letter:\n  path: dl/letters.db\n")
    config = load_config(tmp_path, environ={})
    assert config.dead_letter == TableDeadLetterConfig(path=tmp_path / "dl" / "letters.db")


@pytest.mark.parametrize(
    "section",
    [
        "dead_letter:\n  type: table\n  pathh: x.db\n",  # unknown key
        "dead_letter:\n  type: elastic\n",  # unknown backend
        "dead_letter:\n  type: opensearch\n  url: 127.0.0.1:9200\n",  # no scheme
        "dead_letter:\n  type: opensearch\n  index_prefix: Bad*Name\n",
    ],
)
def test_bad_dead_letter_settings_are_config_errors(tmp_path: Path, section: str) -> None:
    (tmp_path / "rtml.yaml").write_text(section)
    with pytest.raises(ConfigError, match="dead_letter"):
        load_config(tmp_path, environ={})


def test_config_models_reject_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        KafkaDeadLetterConfig(bootstrap="x")  # type: ignore[call-arg]
