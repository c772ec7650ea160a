from __future__ import annotations

from pathlib import Path

import pytest

from rtml.backends.event_log.config import KafkaEventLogConfig, LocalEventLogConfig
from rtml.backends.registry import load_backend_class
from rtml.config import load_config
from rtml.errors import ConfigError


def _project(tmp_path: Path, text: str) -> Path:
    (tmp_path / "rtml.yaml").write_text(text)
    return tmp_path


def test_defaults_without_file(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    assert isinstance(config.event_log, LocalEventLogConfig)
    assert config.data_dir == tmp_path.resolve() / ".rtml"


def test_file_and_relative_paths(tmp_path: Path) -> None:
    config = load_config(
        _project(tmp_path, "project: shop\nevent_log: {type: local, path: data/log.db}\n"),
        environ={},
    )
    assert config.project == "shop"
    assert config.topic("events.raw") == "shop.events.raw"
    assert isinstance(config.event_log, LocalEventLogConfig)
    assert config.event_log.path == tmp_path.resolve() / "data" / "log.db"


def test_environment_overrides_and_switches_backend(tmp_path: Path) -> None:
    root = _project(tmp_path, "project: shop\nevent_log: {type: local, path: data/log.db}\n")
    config = load_config(
        root,
        environ={
            "RTML_EVENT_LOG__TYPE": "kafka",
            "RTML_EVENT_LOG__PARTITIONS": "6",
            "PATH": "/bin",
        },
    )
    assert isinstance(config.event_log, KafkaEventLogConfig)
    assert config.event_log.partitions == 6
    assert config.event_log.bootstrap_servers == "127.0.0.1:9092"
    same_backend = load_config(root, environ={"RTML_EVENT_LOG__PARTITIONS": "4"})
    assert isinstance(same_backend.event_log, LocalEventLogConfig)
    assert same_backend.event_log.partitions == 4


@pytest.mark.parametrize(
    ("text", "environ", "fragment"),
    [
        ("event_log: {type: local, bogus: 1}\n", {}, "event_log.local.bogus: Extra inputs"),
        ("event_log: {type: carrier-pigeon}\n", {}, "event_log"),
        ("nonsense_key: 1\n", {}, "nonsense_key"),
        ("project: Shop!\n", {}, "project"),
        ("event_log: [1, 2\n", {}, "not valid YAML"),
        ("- a list\n", {}, "must be a mapping"),
        ("", {"RTML_EVENT_LOG__PARTITIONS": "zero"}, "partitions"),
    ],
)
def test_invalid_config_names_the_key(
    tmp_path: Path, text: str, environ: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_project(tmp_path, text), environ=environ)
    assert fragment in str(info.value)


def test_unknown_backend_name_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match="known backends: kafka, local, memory"):
        load_backend_class("event_log", "zookeeper")
