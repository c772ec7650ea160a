"""The schema store contract, run against every backend: embedded SQLite (a file and
``:memory:``) and PostgreSQL (the real server of ``scripts/services.sh``, or
``RTML_TEST_PG_URL``; unreachable FAILS the test, it never skips).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtml.backends.schema_store import (
    EmbeddedSchemaRegistryConfig,
    PostgresSchemaRegistryConfig,
    SchemaStore,
    SubjectVersion,
    VersionExistsError,
    open_schema_store,
)
from rtml.errors import BackendUnavailableError

PG_URL = os.environ.get("RTML_TEST_PG_URL", "postgresql://rtml:rtml@127.0.0.1:5432/rtml")
POSTGRES = pytest.param("postgres", marks=pytest.mark.integration)
BACKENDS = ["sqlite-file", "sqlite-memory", POSTGRES]
PERSISTENT = ["sqlite-file", POSTGRES]  # several connections on the same data


def _drop_namespace(namespace: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {namespace} CASCADE")


class Opener:
    """Opens the backend under test; ``reopen`` gives a new store on the same data."""

    def __init__(self, backend: str, tmp_path: Path) -> None:
        self.backend = backend
        self.namespace = f"rtml_test_{uuid.uuid4().hex[:12]}"
        self.config: EmbeddedSchemaRegistryConfig | PostgresSchemaRegistryConfig
        if backend == "postgres":
            self.config = PostgresSchemaRegistryConfig(url=PG_URL, namespace=self.namespace)
        elif backend == "sqlite-file":
            self.config = EmbeddedSchemaRegistryConfig(path=tmp_path / "reg" / "registry.db")
        else:
            self.config = EmbeddedSchemaRegistryConfig(path=Path(":memory:"))
        self.opened: list[SchemaStore] = []

    def open(self) -> SchemaStore:
        store = open_schema_store(self.config)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.close()
        if self.backend == "postgres":
            _drop_namespace(self.namespace)


@pytest.fixture(params=BACKENDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opener = Opener(request.param, tmp_path)
    yield opener
    opener.close()


@pytest.fixture
def store(opener: Opener) -> SchemaStore:
    store = opener.open()
    try:
        store.get_config(None)
    except BackendUnavailableError as exc:
        pytest.fail(f"{exc} (start it with `bash scripts/services.sh start postgres`)", pytrace=False)
    return store


def test_is_a_schema_store(store: SchemaStore) -> None:
    assert isinstance(store, SchemaStore)


def test_ids_start_at_one_and_are_shared_by_fingerprint(store: SchemaStore) -> None:
    first = store.put_schema("AVRO", '"int"', "fp-int")
    second = store.put_schema("JSON", '{"type":"string"}', "fp-str")
    assert (first, second) == (1, 2)
    assert store.put_schema("AVRO", '"int"', "fp-int") == 1
    found = store.get_schema(2)
    assert found is not None
    assert (found.id, found.schema_type, found.text, found.fingerprint) == (
        2,
        "JSON",
        '{"type":"string"}',
        "fp-str",
    )
    assert store.get_schema(99) is None


def test_versions_by_subject_and_schema(store: SchemaStore) -> None:
    a = store.put_schema("AVRO", '"int"', "a")
    b = store.put_schema("AVRO", '"long"', "b")
    store.add_version("s2", 1, a)
    store.add_version("s1", 1, a)
    store.add_version("s1", 2, b)
    assert store.versions() == [
        SubjectVersion("s1", 1, a),
        SubjectVersion("s1", 2, b),
        SubjectVersion("s2", 1, a),
    ]
    assert [v.version for v in store.versions(subject="s1")] == [1, 2]
    assert [(v.subject, v.version) for v in store.versions(schema_id=a)] == [("s1", 1), ("s2", 1)]
    assert store.versions(subject="s1", schema_id=b) == [SubjectVersion("s1", 2, b)]
    assert store.versions(subject="nope") == []


def test_a_taken_version_is_refused(store: SchemaStore) -> None:
    a = store.put_schema("AVRO", '"int"', "a")
    store.add_version("s", 1, a)
    with pytest.raises(VersionExistsError):
        store.add_version("s", 1, a)
    store.add_version("s", 2, a)  # the store is still usable after the refusal
    assert len(store.versions(subject="s")) == 2


def test_soft_then_permanent_delete(store: SchemaStore) -> None:
    a = store.put_schema("AVRO", '"int"', "a")
    for version in (1, 2, 3):
        store.add_version("s", version, a)
    store.delete_versions("s", [1, 3], permanent=False)
    assert [(v.version, v.deleted) for v in store.versions(subject="s")] == [(1, True), (2, False), (3, True)]
    store.delete_versions("s", [1], permanent=True)
    assert [(v.version, v.deleted) for v in store.versions(subject="s")] == [(2, False), (3, True)]
    assert store.get_schema(a) is not None  # schemas outlive their versions (ids are never reused)


def test_configs_global_and_per_subject(store: SchemaStore) -> None:
    assert store.get_config(None) is None
    assert store.get_config("s") is None
    store.set_config(None, "FULL")
    store.set_config("s", "NONE")
    store.set_config("s", "FORWARD")  # overwrite
    assert (store.get_config(None), store.get_config("s"), store.get_config("t")) == ("FULL", "FORWARD", None)
    store.set_config("s", None)
    assert store.get_config("s") is None
    assert store.get_config(None) == "FULL"
    store.set_config(None, None)
    assert store.get_config(None) is None


@pytest.mark.parametrize("opener", PERSISTENT, indirect=True)
def test_data_survives_reopening(opener: Opener, store: SchemaStore) -> None:
    a = store.put_schema("AVRO", '"int"', "a")
    store.add_version("s", 1, a)
    store.set_config("s", "FULL")
    store.close()
    again = opener.open()
    assert again.versions() == [SubjectVersion("s", 1, a)]
    assert again.get_config("s") == "FULL"
    assert again.put_schema("AVRO", '"long"', "b") == 2


@pytest.mark.parametrize("opener", PERSISTENT, indirect=True)
def test_concurrent_writers_never_share_ids_or_versions(opener: Opener, store: SchemaStore) -> None:
    stores = [store, opener.open()]
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def writer(index: int) -> None:
        own = stores[index % 2]
        for n in range(10):
            schema_id = own.put_schema("AVRO", f'"w{index}-{n}"', f"fp-{index}-{n}")
            while True:  # take the next free version, as the registry does
                version = max((v.version for v in own.versions(subject="s")), default=0) + 1
                try:
                    own.add_version("s", version, schema_id)
                    break
                except VersionExistsError:
                    continue
            with lock:
                results.append((schema_id, version))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    ids = [r[0] for r in results]
    versions = [r[1] for r in results]
    assert sorted(ids) == list(range(1, 41))
    assert sorted(versions) == list(range(1, 41))


def test_postgres_down_fails_fast_with_a_clear_error() -> None:
    config = PostgresSchemaRegistryConfig(
        url="postgresql://rtml:secret@127.0.0.1:9/rtml", connect_timeout_s=2
    )
    store = open_schema_store(config)  # opening does not connect: the registry can start without it
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as caught:
        store.versions()
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "unavailable" in message and "secret" not in message and "***" in message
    store.close()


@pytest.mark.parametrize("opener", [POSTGRES], indirect=True)
def test_postgres_recovers_after_losing_its_connection(opener: Opener, store: SchemaStore) -> None:
    import psycopg

    store.set_config(None, "FULL")
    pid = store._pg._conn.info.backend_pid  # type: ignore[attr-defined]  # only this store's session
    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as admin:
        killed = admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
    assert killed == (True,)
    try:
        store.get_config(None)  # may fail once: the connection died under it
    except BackendUnavailableError as exc:
        assert "unavailable" in str(exc)
    assert store.get_config(None) == "FULL"  # and then it reconnects by itself
