"""The online store port: the latest aggregation state of each (feature view, key).

The streaming engine owns the state (:mod:`rtml.core.aggregation`); after each batch it
writes the state blob of every key the batch touched (``KeyState``, msgspec-encoded, one
blob per (view, key)) together with a checkpoint, and a reader turns a blob into feature
values as of any covered time with ``StateReader(view).read(blob, t_ms)``.

``write`` is atomic: the blobs and the checkpoint of one call are stored together or not
at all (one SQLite transaction; one Redis ``MULTI``/``EXEC``). That is what lets the engine
restart after ``kill -9`` from the checkpoint it finds here without counting an event
twice (docs/engine.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

# A key is the tuple of a view's join-key values, in the view's join-key order,
# e.g. (42,) for user_id=42 or (42, 1001) for (user_id, product_id).
Key = tuple[object, ...]


class Append(bytes):
    """A value of ``write``'s ``states`` that is appended to the key's stored blob instead
    of replacing it (a key without a blob gets it as its blob). The engine appends the
    changes of a key's state (``rtml.core.aggregation.delta``) after writing it in full."""

    __slots__ = ()


@runtime_checkable
class OnlineStore(Protocol):
    def write(
        self,
        view: str,
        states: Mapping[Key, bytes],
        *,
        checkpoint: tuple[str, bytes] | None = None,
        ttl_ms: int | None = None,
    ) -> None:
        """Replace the state blobs of ``states``' keys of ``view`` (append to them, for
        values of type :class:`Append`); with ``checkpoint``
        (name, blob), store it in the same atomic step. ``ttl_ms``: the blobs may expire
        after that long without a write (the view's longest window plus a hop: an older
        state holds nothing a read can use)."""
        ...

    def write_many(
        self,
        writes: Mapping[str, tuple[Mapping[Key, bytes], int | None]],
        *,
        checkpoint: tuple[str, bytes] | None = None,
    ) -> None:
        """``write`` for several views at once: each view's ``(states, ttl_ms)`` and the
        checkpoint in one atomic step (one SQLite transaction, one Redis ``MULTI``)."""
        ...

    def read(self, view: str, keys: Sequence[Key]) -> list[bytes | None]:
        """The state blobs of ``keys`` (``None`` for a key the store does not hold), in
        one round trip."""
        ...

    def checkpoint(self, name: str) -> bytes | None:
        """The checkpoint last written under ``name`` (None if none)."""
        ...

    def set_fingerprint(self, view: str, fingerprint: str) -> None:
        """Record the definition fingerprint the stored states of ``view`` were built with."""
        ...

    def fingerprint(self, view: str) -> str | None:
        """The fingerprint recorded for ``view`` (None: never written)."""
        ...

    def close(self) -> None: ...
