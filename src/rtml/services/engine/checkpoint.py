"""The engine's checkpoint: the aggregation state and the log positions it reflects.

One msgpack blob stored in the online store under ``engine:<group>``, written in the same
atomic ``OnlineStore.write`` as the blobs of the batch it closes. It holds

* ``snapshot`` -- every view's runtime (``Aggregator.snapshot()``), stamped with the
  views' definition fingerprints;
* ``positions`` -- per partition of the valid topic, the offset of the last record the
  snapshot includes (records at or before it are skipped on restart);
* the watermark (the largest event time per partition) and the running counts.

On start the engine restores from it, or starts empty when there is none; a checkpoint
of other definitions is refused with the fix (``rtml backfill``). See docs/engine.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from rtml.backends.event_log.base import LogRecord
from rtml.backends.online_store import OnlineStore
from rtml.core.aggregation import StaleStateError
from rtml.core.aggregation.state import KEY_VERSION
from rtml.definitions.feature_view import FeatureView
from rtml.errors import RtmlError
from rtml.services.validator.kafka_support import ConsumerProbe

VERSION = 1


class Checkpoint(msgspec.Struct, kw_only=True):
    version: int = VERSION
    source: str
    topic: str
    fingerprints: dict[str, str]  # view -> fingerprint of the definition its state was built by
    positions: dict[int, int]  # partition -> offset of the last record included
    max_event_by_partition: dict[int, int] = msgspec.field(default_factory=dict)
    counts: dict[str, int] = msgspec.field(default_factory=dict)  # since the state was first built
    snapshot: bytes = b""  # Aggregator.snapshot()
    written_ms: int = 0
    built_by: str = "engine"  # "engine", "backfill" or "materialize"
    # the format of the key states written with it (KeyState's version; 1 before deltas)
    state_format: int = 1


_encoder = msgspec.msgpack.Encoder()


def checkpoint_name(group: str) -> str:
    return f"engine:{group}"


def encode(checkpoint: Checkpoint) -> bytes:
    return _encoder.encode(checkpoint)


def decode(blob: bytes, name: str) -> Checkpoint:
    try:
        checkpoint = msgspec.msgpack.decode(blob, type=Checkpoint)
    except msgspec.DecodeError as exc:
        raise RtmlError(
            f"the engine checkpoint {name!r} in the online store cannot be read ({exc}). "
            "Fix: run `rtml materialize` to rebuild the online state from the offline store"
        ) from None
    if checkpoint.version != VERSION:
        raise RtmlError(
            f"the engine checkpoint {name!r} has format version {checkpoint.version}, this rtml "
            f"reads {VERSION}. Fix: run `rtml materialize` to rebuild it"
        )
    return checkpoint


def check_state_format(checkpoint: Checkpoint, name: str) -> None:
    """The engine appends to stored key states: they must be of this rtml's format."""
    if checkpoint.state_format != KEY_VERSION:
        raise RtmlError(
            f"the online store's feature states (checkpoint {name!r}) are of format "
            f"{checkpoint.state_format}, this rtml writes and reads {KEY_VERSION}. "
            "Fix: run `rtml materialize` to rebuild the online store in the new format"
        )


def load(store: OnlineStore, name: str) -> Checkpoint | None:
    blob = store.checkpoint(name)
    return None if blob is None else decode(blob, name)


def stale_views(checkpoint: Checkpoint, views: Sequence[FeatureView]) -> dict[str, str]:
    """Views whose state the checkpoint lacks or holds from another definition:
    view -> why."""
    out: dict[str, str] = {}
    for view in views:
        found = checkpoint.fingerprints.get(view.name)
        if found is None:
            out[view.name] = "is new since the checkpoint"
        elif found != view.fingerprint():
            out[view.name] = (
                f"was built by another definition (fingerprint {found}, now {view.fingerprint()})"
            )
    return out


def check_views(
    checkpoint: Checkpoint | None, views: Sequence[FeatureView], stored: Mapping[str, str | None]
) -> None:
    """Refuse to resume from state of other definitions: the checkpoint's fingerprints and
    those the online store recorded per view (``stored``) must match the definitions.

    State without a checkpoint is fine: the engine died before its first checkpoint, did
    not commit its offsets either, and starts over (a group that did commit while the
    checkpoint is gone is caught on the first records, see ``service._check_fresh_start``)."""
    problems = dict(stale_views(checkpoint, views)) if checkpoint is not None else {}
    for view in views:
        found = stored.get(view.name)
        if found is not None and found != view.fingerprint() and view.name not in problems:
            problems[view.name] = (
                "has online state built by another definition "
                f"(fingerprint {found}, now {view.fingerprint()})"
            )
    if problems:
        lines = "; ".join(f"view {name!r} {why}" for name, why in sorted(problems.items()))
        views_arg = " ".join(f"--view {name}" for name in sorted(problems))
        raise StaleStateError(
            f"the online state does not match the definitions: {lines}. "
            f"Fix: run `rtml backfill {views_arg}` (or `rtml backfill` for every view) to rebuild it "
            "from the offline store"
        )


def group_has_committed(probe: ConsumerProbe, record: LogRecord) -> bool:
    """Whether the Kafka group has a committed offset for the record's partition."""
    from confluent_kafka import TopicPartition

    kafka: Any = getattr(probe, "_kafka", None)
    if kafka is None:
        return True
    try:
        found = kafka.committed([TopicPartition(record.topic, record.partition)], timeout=5.0)
    except Exception:  # unknown: do not block the start on it
        return False
    return bool(found) and found[0].offset >= 0
