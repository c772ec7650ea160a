"""The online store contract (``rtml.backends.online_store.base``), on every backend.

Redis runs against the server of ``scripts/services.sh`` (or ``RTML_TEST_REDIS_URL``) with a
key prefix unique to each test; a server that cannot be reached FAILS the Redis tests (never
skips them), with a message saying how to start it.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from rtml.backends.online_store import Append, OnlineStore
from rtml.backends.online_store.config import (
    MemoryOnlineStoreConfig,
    OnlineStoreConfig,
    RedisOnlineStoreConfig,
    SqliteOnlineStoreConfig,
)
from rtml.backends.registry import open_backend
from rtml.errors import BackendUnavailableError, InvalidInputError

REDIS_URL = os.environ.get("RTML_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
START_HINT = "start it with `make services` (bash scripts/services.sh start redis) or set RTML_TEST_REDIS_URL"
REDIS = pytest.param("redis", marks=pytest.mark.integration)
ALL_BACKENDS = ["memory", "sqlite", REDIS]


def _redis_problem() -> str | None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as exc:
        return f"Redis at {REDIS_URL} is not reachable ({exc}): {START_HINT}"
    return None


class Harness:
    """A store under test and a way to open it again (another client of the same data)."""

    def __init__(self, backend: str, config: OnlineStoreConfig) -> None:
        self.backend = backend
        self.config = config
        self.opened: list[OnlineStore] = []
        self.store = self.open()

    def open(self) -> OnlineStore:
        store: OnlineStore = open_backend("online_store", self.config)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture(params=ALL_BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    backend: str = request.param
    suffix = uuid.uuid4().hex[:10]
    config: OnlineStoreConfig
    if backend == "memory":
        config = MemoryOnlineStoreConfig(name=f"test-{suffix}")
    elif backend == "sqlite":
        config = SqliteOnlineStoreConfig(path=tmp_path / "online.db")
    else:
        problem = _redis_problem()
        if problem:
            pytest.fail(problem, pytrace=False)
        config = RedisOnlineStoreConfig(url=REDIS_URL, key_prefix=f"rtml-test:{suffix}")
    h = Harness(backend, config)
    yield h
    h.close()
    if backend == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        names = list(client.scan_iter(match=f"rtml-test:{suffix}:*", count=1000))
        if names:
            client.delete(*names)
        client.close()


def test_write_then_read_in_key_order(harness: Harness) -> None:
    store = harness.store
    store.write("user_activity", {(1,): b"one", (2,): b"two", (3,): b""})
    assert store.read("user_activity", [(2,), (4,), (1,), (3,), (2,)]) == [b"two", None, b"one", b"", b"two"]
    assert store.read("user_activity", []) == []


def test_missing_keys_and_other_views_read_none(harness: Harness) -> None:
    store = harness.store
    store.write("user_activity", {(1,): b"a"})
    assert store.read("product_stats", [(1,)]) == [None]
    assert store.read("user_activity", [(1, 2), ("1",), (1.5,)]) == [None, None, None]


def test_keys_are_canonical_tuples_of_any_values(harness: Harness) -> None:
    store = harness.store
    keys = [(42, 1001), ("a:b", 7), ("ünï [c]",), (True,), (-3,)]
    store.write("v", {k: f"blob-{i}".encode() for i, k in enumerate(keys)})
    assert store.read("v", keys) == [f"blob-{i}".encode() for i in range(len(keys))]
    assert store.read("v", [(1001, 42), ("a:b", "7")]) == [None, None]
    # another client of the same data finds them
    assert harness.open().read("v", [(42, 1001)]) == [b"blob-0"]


def test_a_write_replaces_states(harness: Harness) -> None:
    store = harness.store
    store.write("v", {(1,): b"old", (2,): b"kept"})
    store.write("v", {(1,): b"new"})
    assert store.read("v", [(1,), (2,)]) == [b"new", b"kept"]


def test_appends_extend_states_in_the_same_atomic_write(harness: Harness) -> None:
    store = harness.store
    store.write("v", {(1,): b"base", (2,): b"other"}, ttl_ms=60_000)
    store.write(
        "v",
        {(1,): Append(b"\x00+d1"), (3,): Append(b"new"), (2,): b"replaced"},
        checkpoint=("engine", b"c1"),
        ttl_ms=60_000,
    )
    store.write("v", {(1,): Append(b"+d2")}, ttl_ms=60_000)
    reader = harness.open()
    assert reader.read("v", [(1,), (2,), (3,)]) == [b"base\x00+d1+d2", b"replaced", b"new"]
    assert reader.checkpoint("engine") == b"c1"
    store.write("v", {(1,): b"full again"})
    assert store.read("v", [(1,)]) == [b"full again"]
    with pytest.raises(InvalidInputError):  # nothing of a refused write is stored, appends neither
        store.write("v", {(1,): Append(b"!"), (2,): "no"})  # type: ignore[dict-item]
    assert store.read("v", [(1,), (2,)]) == [b"full again", b"replaced"]


def test_an_append_renews_the_expiry(harness: Harness) -> None:
    store = harness.store
    store.write("v", {(1,): b"a"}, ttl_ms=400)
    time.sleep(0.25)
    store.write("v", {(1,): Append(b"b")}, ttl_ms=60_000)
    time.sleep(0.3)
    assert store.read("v", [(1,)]) == [b"ab"]


def test_many_keys_in_one_read(harness: Harness) -> None:
    store = harness.store
    states = {(i,): i.to_bytes(4, "big") for i in range(3000)}
    store.write("v", states)
    keys = [(i,) for i in range(0, 4000, 3)]
    assert store.read("v", keys) == [states.get(k) for k in keys]


def test_checkpoint_is_written_with_the_states(harness: Harness) -> None:
    store = harness.store
    assert store.checkpoint("engine") is None
    store.write("v", {(1,): b"a"}, checkpoint=("engine", b"offsets-1"))
    assert store.checkpoint("engine") == b"offsets-1"
    store.write("v", {}, checkpoint=("engine", b"offsets-2"))
    store.write("w", {(1,): b"b"}, checkpoint=("other", b"x"))
    reader = harness.open()
    assert reader.checkpoint("engine") == b"offsets-2"
    assert reader.checkpoint("other") == b"x"
    assert reader.read("v", [(1,)]) == [b"a"]


def test_a_failed_write_leaves_nothing(harness: Harness) -> None:
    store = harness.store
    bad = {(1,): b"fine", (2,): "not bytes", (3,): b"fine"}
    with pytest.raises(InvalidInputError, match="not bytes"):
        store.write("v", bad, checkpoint=("engine", b"c1"))  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError):
        store.write("v", {(1,): b"fine"}, checkpoint=("engine", None))  # type: ignore[arg-type]
    assert store.read("v", [(1,), (2,), (3,)]) == [None, None, None]
    assert store.checkpoint("engine") is None


def test_states_expire_after_their_ttl(harness: Harness) -> None:
    store = harness.store
    store.write("v", {(1,): b"short"}, ttl_ms=300)
    store.write("v", {(2,): b"long"}, ttl_ms=60_000)
    store.write("v", {(3,): b"forever"})
    store.write("v", {(4,): b"was short"}, ttl_ms=300)
    store.write("v", {(4,): b"rewritten without ttl"})
    assert store.read("v", [(1,), (2,), (3,)]) == [b"short", b"long", b"forever"]
    time.sleep(0.6)
    assert store.read("v", [(1,), (2,), (3,), (4,)]) == [None, b"long", b"forever", b"rewritten without ttl"]
    store.write("v", {(1,): b"back"}, ttl_ms=60_000)
    assert store.read("v", [(1,)]) == [b"back"]


def test_fingerprints_per_view(harness: Harness) -> None:
    store = harness.store
    assert store.fingerprint("user_activity") is None
    store.set_fingerprint("user_activity", "abc123")
    store.set_fingerprint("product_stats", "def456")
    store.set_fingerprint("user_activity", "0badcafe")
    reader = harness.open()
    assert reader.fingerprint("user_activity") == "0badcafe"
    assert reader.fingerprint("product_stats") == "def456"
    assert reader.fingerprint("user_product") is None


def test_the_store_satisfies_the_protocol(harness: Harness) -> None:
    assert isinstance(harness.store, OnlineStore)


# -- concurrency: a reader in another process sees whole writes only --------------------


def _reader_process(config: OnlineStoreConfig, rounds: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store: OnlineStore = open_backend("online_store", config)
    seen: list[int] = []
    problems: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        a, b = store.read("v", [(1,), (2,)])
        if a != b:
            problems.append(f"torn write: {a!r} != {b!r}")
            break
        if a is not None:
            seen.append(int(a))
            if int(a) == rounds - 1:
                break
    store.close()
    queue.put((seen, problems))


@pytest.mark.parametrize("backend", ["sqlite", REDIS])
def test_a_reader_process_sees_whole_writes_while_the_engine_writes(backend: str, tmp_path: Path) -> None:
    config: OnlineStoreConfig
    if backend == "sqlite":
        config = SqliteOnlineStoreConfig(path=tmp_path / "online.db")
    else:
        problem = _redis_problem()
        if problem:
            pytest.fail(problem, pytrace=False)
        config = RedisOnlineStoreConfig(url=REDIS_URL, key_prefix=f"rtml-test:{uuid.uuid4().hex[:10]}")
    writer: OnlineStore = open_backend("online_store", config)
    rounds = 400
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    reader = ctx.Process(target=_reader_process, args=(config, rounds, queue))
    reader.start()
    try:
        filler = {(i,): b"x" * 200 for i in range(10, 60)}  # bigger writes, more chance to tear
        for n in range(rounds):
            blob = str(n).encode()
            writer.write("v", {(1,): blob, **filler, (2,): blob}, checkpoint=("engine", blob))
            time.sleep(0.001)
        seen, problems = queue.get(timeout=60)
    finally:
        reader.join(timeout=10)
        if reader.is_alive():
            reader.kill()
        writer.close()
    assert problems == []
    assert seen and seen == sorted(seen)
    assert seen[-1] == rounds - 1


# -- backend specifics ------------------------------------------------------------------


def test_sqlite_rolls_back_states_when_the_checkpoint_fails(tmp_path: Path) -> None:
    config = SqliteOnlineStoreConfig(path=tmp_path / "online.db")
    store: OnlineStore = open_backend("online_store", config)
    conn = sqlite3.connect(tmp_path / "online.db")
    conn.execute(
        "CREATE TRIGGER fail BEFORE INSERT ON checkpoints BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
    )
    conn.commit()
    with pytest.raises(Exception, match="disk on fire"):
        store.write("v", {(1,): b"a", (2,): b"b"}, checkpoint=("engine", b"c"))
    assert store.read("v", [(1,), (2,)]) == [None, None]
    store.close()
    conn.close()


def test_sqlite_purges_expired_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rtml.backends.online_store import sqlite as sqlite_store

    store = sqlite_store.SqliteOnlineStore(SqliteOnlineStoreConfig(path=tmp_path / "online.db"))
    store.write("v", {(i,): b"x" for i in range(5)}, ttl_ms=1)
    time.sleep(0.01)
    monkeypatch.setattr(sqlite_store, "PURGE_EVERY_MS", 0)
    store.write("v", {(99,): b"y"})
    rows = sqlite3.connect(tmp_path / "online.db").execute("SELECT COUNT(*) FROM states").fetchone()[0]
    assert rows == 1
    store.close()


@pytest.mark.integration
def test_redis_key_layout_and_expiry() -> None:
    problem = _redis_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    prefix = f"rtml-test:{uuid.uuid4().hex[:10]}"
    store: OnlineStore = open_backend(
        "online_store", RedisOnlineStoreConfig(url=REDIS_URL, key_prefix=prefix)
    )
    client = redis.Redis.from_url(REDIS_URL)
    try:
        store.write("user_product", {(42, 1001): b"blob"}, checkpoint=("engine", b"c"), ttl_ms=60_000)
        store.set_fingerprint("user_product", "f1")
        assert client.get(f"{prefix}:user_product:[42,1001]") == b"blob"
        assert 0 < client.pttl(f"{prefix}:user_product:[42,1001]") <= 60_000
        assert client.get(f"{prefix}:_checkpoint:engine") == b"c"
        assert client.pttl(f"{prefix}:_checkpoint:engine") == -1
        assert client.hgetall(f"{prefix}:_fingerprints") == {b"user_product": b"f1"}
    finally:
        names = list(client.scan_iter(match=f"{prefix}:*"))
        if names:
            client.delete(*names)
        client.close()
        store.close()


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.read("v", [(1,)]),
        lambda s: s.write("v", {(1,): b"a"}, checkpoint=("engine", b"c")),
        lambda s: s.fingerprint("v"),
        lambda s: s.checkpoint("engine"),
    ],
    ids=["read", "write", "fingerprint", "checkpoint"],
)
def test_redis_down_is_a_clear_error_not_a_hang(call: Callable[[OnlineStore], object]) -> None:
    store: OnlineStore = open_backend("online_store", RedisOnlineStoreConfig(url="redis://127.0.0.1:1/0"))
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match=r"127\.0\.0\.1:1.*online_store\.url"):
        call(store)
    assert time.monotonic() - started < 3
    store.close()


def test_a_blackholed_redis_times_out(tmp_path: Path) -> None:
    """A server that accepts connections but never answers fails after timeout_s."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    store: OnlineStore = open_backend(
        "online_store", RedisOnlineStoreConfig(url=f"redis://127.0.0.1:{port}/0", timeout_s=0.5)
    )
    started = time.monotonic()
    try:
        with pytest.raises(BackendUnavailableError, match="not reachable"):
            store.read("v", [(1,)])
        assert time.monotonic() - started < 3
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()
        store.close()


@pytest.mark.integration
def test_redis_reads_several_views_in_one_mget() -> None:
    problem = _redis_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    from rtml.backends.online_store.redis import RedisOnlineStore

    prefix = f"rtml-test:{uuid.uuid4().hex[:10]}"
    store = RedisOnlineStore(RedisOnlineStoreConfig(url=REDIS_URL, key_prefix=prefix))
    try:
        store.write("a", {(1,): b"a1", (2,): b"a2"})
        store.write("b", {(1, 2): b"b12"})
        got = store.read_many({"a": [(2,), (3,), (1,)], "b": [(1, 2)], "c": []})
        assert got == {"a": [b"a2", None, b"a1"], "b": [b"b12"], "c": []}
        assert store.read_many({}) == {}
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        names = list(client.scan_iter(match=f"{prefix}:*"))
        if names:
            client.delete(*names)
        client.close()
        store.close()
