"""The dead-letter port: where invalid events end, with their reason.

Each invalid raw event becomes one :class:`DeadLetter`: its original bytes, exactly as
the producer sent them, a stable error code, a message, the field at fault, and the
position it was read from (source topic, partition, offset). The position is the
letter's identity: writing the same letter twice -- a validator that crashed after
``write`` but before committing its input offsets processes the same records again --
leaves one copy.

The validator's order of work is: ``write(letters)``, ``flush()``, then commit its input
offsets. ``flush`` returning means the letters are durable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from rtml.backends.event_log.base import LogRecord
from rtml.errors import InvalidInputError

# Longest message and field path a sink stores; longer ones are cut (the raw bytes never are).
MAX_MESSAGE_CHARS = 4000
MAX_FIELD_CHARS = 1000
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """One invalid raw event and why it is invalid.

    ``received_ms`` is when the validator received it (ms since the epoch, UTC); it picks
    the daily index of the search sink. ``key`` is the source record's key, if any.
    """

    raw: bytes
    code: str
    message: str
    field_path: str | None
    topic: str
    partition: int
    offset: int
    received_ms: int
    event_id: str | None = None
    key: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes):
            raise InvalidInputError(f"DeadLetter.raw must be bytes, got {type(self.raw).__name__}")
        if not isinstance(self.code, str) or not self.code:
            raise InvalidInputError("DeadLetter.code must be a non-empty string, e.g. 'not_json'")
        if not isinstance(self.topic, str) or not self.topic:
            raise InvalidInputError(
                "DeadLetter.topic must name the source topic (or file) the event was read from"
            )
        for name in ("partition", "offset", "received_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInputError(f"DeadLetter.{name} must be an integer >= 0, got {value!r}")
        if self.received_ms > MAX_TIME_MS:
            raise InvalidInputError(
                f"DeadLetter.received_ms must be milliseconds since the epoch, got {self.received_ms}"
            )
        if self.key is not None and not isinstance(self.key, bytes):
            raise InvalidInputError("DeadLetter.key must be bytes or None")
        # Text goes into SQLite, JSON and Kafka headers: make it valid UTF-8, bounded.
        object.__setattr__(self, "code", _clean(self.code, 200))
        object.__setattr__(self, "message", _clean(str(self.message), MAX_MESSAGE_CHARS))
        if self.field_path is not None:
            object.__setattr__(self, "field_path", _clean(str(self.field_path), MAX_FIELD_CHARS))
        if self.event_id is not None:
            object.__setattr__(self, "event_id", _clean(str(self.event_id), MAX_FIELD_CHARS))

    @property
    def position(self) -> tuple[str, int, int]:
        """The letter's identity: (source topic, partition, offset)."""
        return (self.topic, self.partition, self.offset)

    @property
    def document_id(self) -> str:
        """``<topic>-<partition>-<offset>``: the id of the letter in a search index."""
        return f"{self.topic}-{self.partition}-{self.offset}"


def _clean(text: str, limit: int) -> str:
    """``text`` as valid UTF-8 (lone surrogates replaced), cut to ``limit`` characters."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_per_position(letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    """``letters`` without repeats of a position; the first of each wins."""
    seen: dict[tuple[str, int, int], DeadLetter] = {}
    for letter in letters:
        seen.setdefault(letter.position, letter)
    return list(seen.values())


def by_recency(letter: DeadLetter) -> tuple[int, str, int, int]:
    """Sort key of ``recent``: received time, then position."""
    return (letter.received_ms, letter.topic, letter.partition, letter.offset)


def ranked(counts: Mapping[str, int]) -> dict[str, int]:
    """``counts`` most frequent first (ties by code), as ``counts_by_code`` returns them."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@runtime_checkable
class DeadLetterSink(Protocol):
    """Where invalid events are kept. Every backend is a context manager.

    ``transactional`` is True for a sink whose letters a Kafka validator should write in
    its own transaction (see :class:`TransactionalDeadLetterSink`) instead of ``write``.
    """

    transactional: ClassVar[bool]

    def write(self, letters: Sequence[DeadLetter]) -> None:
        """Store ``letters``. Idempotent by position: a letter whose (topic, partition,
        offset) is already stored is not stored again -- the first copy wins."""
        ...

    def flush(self) -> None:
        """Return when everything written so far is durable and visible to the counts."""
        ...

    def count(self) -> int:
        """How many letters are stored (one per position)."""
        ...

    def counts_by_code(self) -> dict[str, int]:
        """Letters per error code, most frequent first."""
        ...

    def recent(self, limit: int = 20) -> list[DeadLetter]:
        """Up to ``limit`` letters, the most recently received last."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class TransactionalDeadLetterSink(DeadLetterSink, Protocol):
    """A sink on a Kafka topic that can be part of the validator's Kafka transaction.

    The validator sends ``to_records(letters)`` to ``topic`` with its transactional
    producer, together with the valid events and ``send_offsets_to_transaction``; the
    letters are then written exactly once, whatever crashes, with no ``write``.
    """

    @property
    def topic(self) -> str: ...

    def to_records(self, letters: Sequence[DeadLetter]) -> list[LogRecord]:
        """The Kafka records of ``letters``, for ``topic``."""
        ...
