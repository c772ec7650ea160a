"""The Redis online store (redis-py).

Key layout, below the prefix ``P`` (``online_store.key_prefix``, default ``rtml:<project>``):

* ``P:<view>:<key>`` -> the key's state blob (a string), e.g. ``rtml:ecommerce:user_activity:[42]``
  or ``rtml:ecommerce:user_product:[42,1001]``; ``<key>`` is the canonical JSON of the key's
  values (:mod:`.keys`). Written with ``PX <ttl>`` when the writer gives a ttl, so a key
  without writes for its longest window plus a hop disappears by itself;
* ``P:_checkpoint:<name>`` -> a checkpoint blob (no expiry);
* ``P:_fingerprints`` -> a hash: view -> definition fingerprint.

An :class:`~.base.Append` value is ``APPEND``ed (and its expiry renewed with ``PEXPIRE``).
View names cannot start with ``_``, so the three never collide. A ``write`` is one
``MULTI``/``EXEC`` (redis-py pipeline with ``transaction=True``): other clients see all
of its keys and the checkpoint, or none. A ``read`` is one ``MGET``, and so is
``read_many`` (the keys of several views: one round trip for a model's request). Every call is bounded
by ``connect_timeout_s`` and ``timeout_s`` (one retry on a dropped connection): a server
that is down or stuck gives :class:`~rtml.errors.BackendUnavailableError`, never a hang.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rtml.backends.online_store.base import Append, Key
from rtml.backends.online_store.config import RedisOnlineStoreConfig, key_prefix
from rtml.backends.online_store.keys import as_blob, encode_key
from rtml.errors import BackendUnavailableError, InvalidInputError, RtmlError

T = TypeVar("T")


class RedisOnlineStore:
    """Online state in Redis. Thread-safe (redis-py's connection pool)."""

    def __init__(self, config: RedisOnlineStoreConfig) -> None:
        self._config = config
        self._prefix = (config.key_prefix or key_prefix("rtml")).encode()
        self._fingerprints = self._prefix + b":_fingerprints"
        # Connects on first use: a server that is down fails calls, not the constructor.
        self._client = redis.Redis.from_url(
            config.url,
            socket_connect_timeout=config.connect_timeout_s,
            socket_timeout=config.timeout_s,
            retry=Retry(NoBackoff(), 1),
            max_connections=config.max_connections,
        )
        kwargs = self._client.connection_pool.connection_kwargs
        self._where = (
            str(kwargs["path"])
            if "path" in kwargs
            else f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
        )

    def state_key(self, view: str, key: Key) -> bytes:
        """The Redis key of one (view, key) state: ``P:<view>:<key JSON>``."""
        return b"%s:%s:%s" % (self._prefix, view.encode(), encode_key(key))

    def checkpoint_key(self, name: str) -> bytes:
        return b"%s:_checkpoint:%s" % (self._prefix, name.encode())

    # -- OnlineStore --------------------------------------------------------------------

    def write(
        self,
        view: str,
        states: Mapping[Key, bytes],
        *,
        checkpoint: tuple[str, bytes] | None = None,
        ttl_ms: int | None = None,
    ) -> None:
        self.write_many({view: (states, ttl_ms)}, checkpoint=checkpoint)

    def write_many(
        self,
        writes: Mapping[str, tuple[Mapping[Key, bytes], int | None]],
        *,
        checkpoint: tuple[str, bytes] | None = None,
    ) -> None:
        """``write`` of several views (states, ttl) and the checkpoint in one ``MULTI``/``EXEC``."""
        staged = [
            (self.state_key(view, k), as_blob(blob, k), isinstance(blob, Append), ttl_ms)
            for view, (states, ttl_ms) in writes.items()
            for k, blob in states.items()
        ]
        if checkpoint is not None:
            staged_checkpoint = (
                self.checkpoint_key(checkpoint[0]),
                as_blob(checkpoint[1], f"checkpoint {checkpoint[0]!r}"),
            )
        if not staged and checkpoint is None:
            return

        def run() -> None:
            pipe = self._client.pipeline(transaction=True)
            for name, blob, append, ttl_ms in staged:
                if not append:
                    pipe.set(name, blob, px=ttl_ms)
                    continue
                pipe.append(name, blob)
                if ttl_ms is not None:
                    pipe.pexpire(name, ttl_ms)
            if checkpoint is not None:
                pipe.set(*staged_checkpoint)
            pipe.execute()

        self._call("write", run)

    def read(self, view: str, keys: Sequence[Key]) -> list[bytes | None]:
        if not keys:
            return []
        names = [self.state_key(view, k) for k in keys]
        values: list[bytes | None] = self._call("read", lambda: self._client.mget(names))
        return values

    def read_many(self, requests: Mapping[str, Sequence[Key]]) -> dict[str, list[bytes | None]]:
        """``read`` of several views in one ``MGET`` (one round trip for a model's views)."""
        names = [self.state_key(view, k) for view, keys in requests.items() for k in keys]
        if not names:
            return {view: [] for view in requests}
        values: list[bytes | None] = self._call("read", lambda: self._client.mget(names))
        out, at = {}, 0
        for view, keys in requests.items():
            out[view] = values[at : at + len(keys)]
            at += len(keys)
        return out

    def checkpoint(self, name: str) -> bytes | None:
        value: bytes | None = self._call("read", lambda: self._client.get(self.checkpoint_key(name)))
        return value

    def set_fingerprint(self, view: str, fingerprint: str) -> None:
        self._call("write", lambda: self._client.hset(self._fingerprints, view, fingerprint))

    def fingerprint(self, view: str) -> str | None:
        value: bytes | None = self._call("read", lambda: self._client.hget(self._fingerprints, view))
        return None if value is None else value.decode()

    def close(self) -> None:
        self._client.close()

    # -- helpers ------------------------------------------------------------------------

    def _call(self, what: str, action: Callable[[], Any]) -> Any:
        with self._errors(what):
            return action()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Translate redis-py errors into rtml errors that say what to do."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise BackendUnavailableError(
                f"the online store (Redis at {self._where}) is not reachable for a {what}: {exc}. "
                "Fix: start it (`make services`, i.e. bash scripts/services.sh start redis) "
                "or fix online_store.url in rtml.yaml"
            ) from exc
        except redis.DataError as exc:
            raise InvalidInputError(f"cannot {what} the online store: {exc}") from exc
        except redis.RedisError as exc:
            raise RtmlError(
                f"the online store (Redis at {self._where}) refused a {what}: {exc}. "
                "Fix: check the server's state (memory limit, read-only replica, credentials)"
            ) from exc
