"""In-process dead-letter sink: thread-safe, not durable. Used by tests and ``rtml.testing``."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

from rtml.backends.dead_letter.base import DeadLetter, by_recency, ranked
from rtml.backends.dead_letter.config import MemoryDeadLetterConfig


class MemoryDeadLetterSink:
    """Letters in a dict keyed by position; the first write of a position wins."""

    transactional: ClassVar[bool] = False

    def __init__(self, config: MemoryDeadLetterConfig | None = None) -> None:
        self._config = config or MemoryDeadLetterConfig()
        self._lock = threading.Lock()
        self._letters: dict[tuple[str, int, int], DeadLetter] = {}

    def write(self, letters: Sequence[DeadLetter]) -> None:
        with self._lock:
            for letter in letters:
                self._letters.setdefault(letter.position, letter)

    def flush(self) -> None:
        """Nothing to do: a written letter is visible at once."""

    def count(self) -> int:
        with self._lock:
            return len(self._letters)

    def counts_by_code(self) -> dict[str, int]:
        with self._lock:
            counts = Counter(letter.code for letter in self._letters.values())
        return ranked(counts)

    def recent(self, limit: int = 20) -> list[DeadLetter]:
        with self._lock:
            letters = sorted(self._letters.values(), key=by_recency)
        return letters[-limit:] if limit > 0 else []

    def close(self) -> None:
        """Nothing to release; the letters stay readable."""

    def __enter__(self) -> MemoryDeadLetterSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
