"""In-process online store: thread-safe, not durable. Used by tests.

It follows the contract of ``base.py`` like the real backends (atomic writes, expiry,
fingerprints). Stores opened with the same config ``name`` in one process share their
data, so a test's engine and server see the same state; ``name=None`` is private.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rtml.backends.online_store.base import Append, Key
from rtml.backends.online_store.config import MemoryOnlineStoreConfig
from rtml.backends.online_store.keys import as_blob, encode_key
from rtml.errors import RtmlError


@dataclass
class _Data:
    lock: threading.Lock = field(default_factory=threading.Lock)
    states: dict[tuple[str, bytes], tuple[bytes, int | None]] = field(default_factory=dict)
    checkpoints: dict[str, bytes] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)


_SHARED: dict[str, _Data] = {}
_SHARED_LOCK = threading.Lock()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class MemoryOnlineStore:
    """State blobs in a dict: (view, encoded key) -> (blob, expires at ms or None)."""

    def __init__(self, config: MemoryOnlineStoreConfig | None = None) -> None:
        self._config = config or MemoryOnlineStoreConfig()
        if self._config.name is None:
            self._data = _Data()
        else:
            with _SHARED_LOCK:
                self._data = _SHARED.setdefault(self._config.name, _Data())
        self._closed = False

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
        """``write`` of several views (states, ttl) and the checkpoint in one step."""
        self._check_open()
        now = _now_ms()
        staged: dict[tuple[str, bytes], tuple[bytes, int | None]] = {}
        appended: set[tuple[str, bytes]] = set()
        for view, (states, ttl_ms) in writes.items():
            expires = None if ttl_ms is None else now + ttl_ms
            for k, blob in states.items():
                name = (view, encode_key(k))
                staged[name] = (as_blob(blob, k), expires)
                if isinstance(blob, Append):
                    appended.add(name)
                else:
                    appended.discard(name)
        if checkpoint is not None:
            as_blob(checkpoint[1], f"checkpoint {checkpoint[0]!r}")
        with self._data.lock:  # everything is checked first: the update below cannot fail
            for name in appended:
                old = self._data.states.get(name)
                if old is not None and (old[1] is None or old[1] > _now_ms()):
                    staged[name] = (old[0] + staged[name][0], staged[name][1])
            self._data.states.update(staged)
            if checkpoint is not None:
                self._data.checkpoints[checkpoint[0]] = bytes(checkpoint[1])

    def read(self, view: str, keys: Sequence[Key]) -> list[bytes | None]:
        self._check_open()
        now = _now_ms()
        encoded = [(view, encode_key(k)) for k in keys]
        with self._data.lock:
            found = [self._data.states.get(k) for k in encoded]
        return [None if f is None or (f[1] is not None and f[1] <= now) else f[0] for f in found]

    def checkpoint(self, name: str) -> bytes | None:
        self._check_open()
        with self._data.lock:
            return self._data.checkpoints.get(name)

    def set_fingerprint(self, view: str, fingerprint: str) -> None:
        self._check_open()
        with self._data.lock:
            self._data.fingerprints[view] = fingerprint

    def fingerprint(self, view: str) -> str | None:
        self._check_open()
        with self._data.lock:
            return self._data.fingerprints.get(view)

    def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RtmlError("the online store is closed")
