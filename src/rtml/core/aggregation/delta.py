"""Incremental key states: a full state, then appended changes.

A key's stored state (format 2) is a sequence of frames, each a 4-byte big-endian length
and a msgpack payload, after the magic ``RTK2``:

    RTK2 | len | KeyState (full: tiles + head)  | len | KeyDelta | len | KeyDelta | ...

A :class:`KeyDelta` holds what changed since the frame before it: the tile rows a batch
merged into (their current partials: a later frame's tile replaces an earlier one's), the
head events it appended, and the key's clock (``high_water``/``covered_from``/
``retained_from``). Folding the frames (:func:`decode_state`) gives the state a full export
would give at the time of the last frame, for every read at a covered ``t``: tiles and head
events the runtime has evicted since may still be there, but no covered read uses them.

So the engine writes a key's full state once, then appends only what each batch changed (a
few tile rows and the new head events, instead of a day of tiles and ten minutes of events),
and writes the full state again when the appended frames outgrow it. A restarted engine
writes each key in full on its first write, which replaces whatever a crashed run appended
after its last checkpoint.

:class:`Changes` records, while the runtime applies batches, the (key, tile) rows each
level merged into and the head events appended, for the engine's export of deltas.
"""

from __future__ import annotations

import struct
from itertools import chain
from typing import Any

import msgspec
import numpy as np

from rtml.errors import RtmlError

MAGIC = b"RTK2"
_FRAME = struct.Struct(">I")
_encoder = msgspec.msgpack.Encoder()


class KeyDelta(msgspec.Struct, kw_only=True, array_like=True):
    high_water: int | None
    covered_from: int | None
    retained_from: int | None
    tiles: list[list[int]]  # per level, the tile indices changed (current partials below)
    fields: list[dict[str, list[Any]]]  # per level, field -> value per changed tile
    head: dict[str, list[Any]]  # head events appended, any order


class BrokenStateError(RtmlError):
    """A stored state blob is cut or not an rtml state."""

    http_status = 409


def frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload)) + payload


def full_blob(state_payload: bytes) -> bytes:
    """A full state's blob: the magic and one frame."""
    return MAGIC + frame(state_payload)


def delta_frame(delta: KeyDelta) -> bytes:
    """The bytes to append to a stored blob."""
    return frame(_encoder.encode(delta))


def split_frames(blob: bytes) -> list[memoryview]:
    """The payloads of a format-2 blob (the first is the full state)."""
    view = memoryview(blob)
    at, end, out = len(MAGIC), len(view), []
    while at < end:
        if at + 4 > end:
            raise _broken()
        (n,) = _FRAME.unpack_from(view, at)
        at += 4
        if at + n > end:
            raise _broken()
        out.append(view[at : at + n])
        at += n
    if not out:
        raise _broken()
    return out


def _broken() -> BrokenStateError:
    return BrokenStateError(
        "a stored feature state is cut short (a partial write, or the store evicted it under memory "
        "pressure). Fix: run `rtml materialize` to rebuild the online store"
    )


def fold(state: Any, deltas: list[KeyDelta]) -> Any:
    """Apply ``deltas`` (in order) to a decoded ``KeyState``, in place; returns it."""
    if not deltas:
        return state
    for delta in deltas:
        for level, (tiles, fields) in enumerate(zip(delta.tiles, delta.fields, strict=True)):
            if tiles:
                _merge_tiles(state.tiles[level], state.fields[level], tiles, fields)
        if delta.head and delta.head.get("ts"):
            for name, values in delta.head.items():
                state.head.setdefault(name, []).extend(values)
        state.high_water = delta.high_water
        state.covered_from = delta.covered_from
        state.retained_from = delta.retained_from
    _sort_head(state)
    return state


def _merge_tiles(
    have: list[int], have_fields: dict[str, list[Any]], tiles: list[int], fields: dict[str, list[Any]]
) -> None:
    at = {t: i for i, t in enumerate(have)}
    appended = False
    for j, t in enumerate(tiles):
        i = at.get(t)
        if i is None:
            at[t] = len(have)
            have.append(t)
            for name, values in fields.items():
                have_fields.setdefault(name, []).append(values[j])
            appended = True
        else:
            for name, values in fields.items():
                have_fields[name][i] = values[j]
    if appended:  # keep the tiles ascending (reads bisect them)
        order = sorted(range(len(have)), key=have.__getitem__)
        have[:] = [have[i] for i in order]
        for name, values in have_fields.items():
            have_fields[name] = [values[i] for i in order]


def _sort_head(state: Any) -> None:
    """Head events by time (ties keep their order; reads of ``last`` sort ties by event id),
    without those before ``covered_from``."""
    head = state.head
    ts = head.get("ts")
    if not ts:
        return
    arr = np.asarray(ts, dtype=np.int64)
    order = np.argsort(arr, kind="stable")
    if state.covered_from is not None:
        order = order[arr[order] >= state.covered_from]
    if len(order) == len(arr) and bool((order[1:] > order[:-1]).all()):
        return
    pick = order.tolist()
    for name, values in head.items():
        head[name] = [values[i] for i in pick]


class Changes:
    """What batches changed in a runtime since the last :meth:`take`: per level, the
    (key id, tile) pairs merged into; the head events appended (with their key ids)."""

    def __init__(self, levels: int) -> None:
        self.levels = levels
        self._tiles: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(levels)]
        self._head: list[tuple[np.ndarray, dict[str, list[Any]]]] = []

    def add_tiles(self, level: int, keys: np.ndarray, tiles: np.ndarray) -> None:
        self._tiles[level].append((keys, tiles))

    def add_head(self, keys: np.ndarray, columns: dict[str, list[Any]]) -> None:
        self._head.append((keys, columns))

    def take(self) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, dict[str, list[Any]]]]:
        """Per level the unique (key ids, tiles) sorted by key then tile; the head events'
        key ids and columns (in order of arrival); and forget them."""
        tiles_out = []
        for parts in self._tiles:
            if not parts:
                empty = np.zeros(0, dtype=np.int64)
                tiles_out.append((empty, empty))
                continue
            keys = np.concatenate([k for k, _ in parts])
            tiles = np.concatenate([t for _, t in parts])
            order = np.lexsort((tiles, keys))
            keys, tiles = keys[order], tiles[order]
            keep = np.ones(len(keys), dtype=bool)
            keep[1:] = (keys[1:] != keys[:-1]) | (tiles[1:] != tiles[:-1])
            tiles_out.append((keys[keep], tiles[keep]))
        if self._head:
            head_keys = np.concatenate([k for k, _ in self._head])
            names = list(self._head[0][1])
            head_cols = {n: list(chain.from_iterable(cols[n] for _, cols in self._head)) for n in names}
        else:
            head_keys, head_cols = np.zeros(0, dtype=np.int64), {}
        self._tiles = [[] for _ in range(self.levels)]
        self._head = []
        return tiles_out, (head_keys, head_cols)

    def clear(self) -> None:
        self._tiles = [[] for _ in range(self.levels)]
        self._head = []
