"""`rtml run indexer`: the Kafka dead-letter topic copied into the search index, each letter
exactly once, also when the indexer dies between the bulk request and its offset commit.

Real Kafka and the search server (scripts/services.sh start kafka search); a server that
is down FAILS these tests.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtml.backends.dead_letter import DeadLetter
from rtml.backends.dead_letter.config import KafkaDeadLetterConfig, OpenSearchDeadLetterConfig, for_project
from rtml.backends.dead_letter.kafka import KafkaDeadLetterSink
from rtml.backends.dead_letter.opensearch import OpenSearchDeadLetterSink
from rtml.cli.main import app
from rtml.errors import ConfigError
from rtml.project import Project, init_project
from rtml.services.indexer import DeadLetterIndexer

T0 = 1_709_294_400_000  # 2024-03-01T12:00Z


def _project(tmp_path: Path, kafka: str, search: str, name: str) -> Project:
    root = tmp_path / "proj"
    init_project(root)
    text = (root / "rtml.yaml").read_text().replace("project: ecommerce", f"project: {name}")
    text += f"dead_letter:\n  type: kafka\n  bootstrap_servers: {kafka}\n  index:\n    url: {search}\n"
    (root / "rtml.yaml").write_text(text)
    return Project.load(root)


def _letters(n: int) -> list[DeadLetter]:
    codes = ("not_json", "schema", "rule")
    return [
        DeadLetter(
            raw=b"bad " + str(i).encode(),
            code=codes[i % 3],
            message=f"problem {i}",
            field_path="$.price" if i % 3 == 1 else None,
            topic="t.events.raw",
            partition=0,
            offset=i,
            received_ms=T0 + i,
            event_id=f"e{i}",
        )
        for i in range(n)
    ]


@pytest.fixture
def project(tmp_path: Path, kafka_bootstrap: str) -> Project:
    search = os.environ.get("RTML_TEST_SEARCH", "http://127.0.0.1:9200")
    return _project(tmp_path, kafka_bootstrap, search, f"idx{uuid.uuid4().hex[:10]}")


def _search_sink(project: Project) -> OpenSearchDeadLetterSink:
    config = for_project(
        project.config.dead_letter, project=project.config.project, data_dir=project.data_dir
    )
    assert isinstance(config, KafkaDeadLetterConfig) and isinstance(config.index, OpenSearchDeadLetterConfig)
    return OpenSearchDeadLetterSink(config.index)


def _topic_sink(project: Project) -> KafkaDeadLetterSink:
    config = for_project(
        project.config.dead_letter, project=project.config.project, data_dir=project.data_dir
    )
    assert isinstance(config, KafkaDeadLetterConfig)
    return KafkaDeadLetterSink(config)


def test_the_topic_ends_in_the_index_once_even_after_a_crash_before_commit(project: Project) -> None:
    with _topic_sink(project) as topic:
        topic.write(_letters(250))
        topic.flush()

    # A first indexer sends every letter but dies before committing its offsets.
    crashing = DeadLetterIndexer(project, group="crashing")
    with pytest.MonkeyPatch.context() as patch:
        from rtml.backends.event_log import kafka as kafka_log

        def die(self: object) -> None:
            raise RuntimeError("killed between _bulk and commit")

        patch.setattr(kafka_log.KafkaLogConsumer, "commit", die)
        with pytest.raises(RuntimeError, match="killed"):
            crashing.run(until_idle=True)

    # The restarted indexer (same group: nothing committed) re-sends everything.
    stats = DeadLetterIndexer(project, group="crashing").run(until_idle=True)
    assert stats.letters == 250 and stats.stopped_by == "idle"
    with _search_sink(project) as index:
        index.flush()
        assert index.count() == 250
        assert index.counts_by_code() == {"not_json": 84, "schema": 83, "rule": 83}
        newest = index.recent(1)[0]
        assert newest.event_id == "e249" and newest.raw == b"bad 249"

    # Nothing new: a second run indexes nothing and the count stays.
    again = DeadLetterIndexer(project, group="crashing").run(until_idle=True)
    assert again.letters == 0 and again.stopped_by == "idle"
    with _search_sink(project) as index:
        assert index.count() == 250


def test_the_indexer_refuses_a_project_without_a_kafka_topic_and_index(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    init_project(root)
    with pytest.raises(ConfigError, match=r"dead_letter is 'table' without an index.*index: \{url"):
        DeadLetterIndexer(Project.load(root))


def test_rtml_run_indexer_until_idle(project: Project) -> None:
    with _topic_sink(project) as topic:
        topic.write(_letters(12))
        topic.flush()
    result = CliRunner().invoke(app, ["run", "indexer", "--project", str(project.root), "--until-idle"])
    assert result.exit_code == 0, result.output
    assert "indexed 12 letters" in result.output
    with _search_sink(project) as index:
        index.flush()
        assert index.count() == 12
