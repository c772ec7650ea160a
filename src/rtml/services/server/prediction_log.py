"""``PredictionLogger``: predictions -> the prediction log, in batches, off the request path.

A request hands its rows to :meth:`PredictionLogger.submit`, which only appends them to a
bounded in-memory queue (``server.predict.log.queue_size``) and returns. One background
thread takes up to ``batch_size`` rows at a time -- as soon as that many wait, or
``flush_interval_s`` after the oldest arrived -- and writes them with one call of the
backend (:mod:`rtml.backends.prediction_log`).

When the queue is full the rows that do not fit are dropped and counted
(``rtml_prediction_log_dropped{reason="queue_full"}``): a slow or down log never slows or
fails a prediction. A failed write is retried (every ``flush_interval_s``, at most 5 s
apart) while new rows wait in the queue; on shutdown the queue is written out once more,
and what still cannot be written is counted as dropped (``reason="shutdown"``).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from rtml.backends.prediction_log.base import PredictionLog, PredictionRecord
from rtml.services.logging import log_event
from rtml.services.server.settings import PredictionLogSettings

_MAX_BACKOFF_S = 5.0


class PredictionLogger:
    def __init__(
        self,
        open_log: Callable[[], PredictionLog],
        settings: PredictionLogSettings,
        *,
        logger: logging.Logger,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self._open_log = open_log
        self._log: PredictionLog | None = None
        self._logger = logger
        self._queue: collections.deque[tuple[float, PredictionRecord]] = collections.deque()
        self._cond = threading.Condition()
        self._writing = 0  # rows taken from the queue and not yet written
        self._flush_now = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        registry = registry if registry is not None else CollectorRegistry()
        self.written = Counter(
            "rtml_prediction_log_written", "Predictions written to the prediction log", registry=registry
        )
        self.dropped = Counter(
            "rtml_prediction_log_dropped",
            "Predictions not logged: queue full, or still unwritten at shutdown",
            ["reason"],
            registry=registry,
        )
        self.failures = Counter(
            "rtml_prediction_log_write_failures", "Failed writes of a batch (retried)", registry=registry
        )
        queued = Gauge("rtml_prediction_log_queued", "Predictions waiting to be written", registry=registry)
        queued.set_function(lambda: len(self._queue) + self._writing)

    # -- the request side -------------------------------------------------------------

    def submit(self, records: Sequence[PredictionRecord]) -> int:
        """Queue ``records``; returns how many fit (the rest are dropped and counted)."""
        now = time.monotonic()
        with self._cond:
            before = len(self._queue)
            room = max(0, self.settings.queue_size - before)
            taken = records[:room] if room < len(records) else records
            self._queue.extend((now, r) for r in taken)
            # Wake the writer for a full batch, or to start the clock of a first row.
            if taken and (before == 0 or len(self._queue) >= self.settings.batch_size):
                self._cond.notify()
        lost = len(records) - len(taken)
        if lost:
            self.dropped.labels("queue_full").inc(lost)
        return len(taken)

    # -- the writer thread --------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rtml-prediction-log", daemon=True)
        self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Write what is queued now and wait for it (tests, shutdown). True if all written."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_now = True
            self._cond.notify_all()
            while self._queue or self._writing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
                self._flush_now = True
                self._cond.notify_all()
        return True

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            left = len(self._queue) + self._writing
            self._queue.clear()
        if left:
            self.dropped.labels("shutdown").inc(left)
            log_event(self._logger, "prediction_log_lost", level=logging.WARNING, rows=left)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._write(batch)

    def _next_batch(self) -> list[PredictionRecord] | None:
        size, interval = self.settings.batch_size, self.settings.flush_interval_s
        with self._cond:
            while True:
                if self._queue and (
                    len(self._queue) >= size
                    or self._flush_now
                    or self._stopping
                    or time.monotonic() - self._queue[0][0] >= interval
                ):
                    break
                if self._stopping:
                    return None
                if not self._queue:
                    self._flush_now = False
                    self._cond.notify_all()
                wait = interval - (time.monotonic() - self._queue[0][0]) if self._queue else None
                self._cond.wait(wait)
            n = min(size, len(self._queue))
            batch = [self._queue.popleft()[1] for _ in range(n)]
            self._writing = n
            return batch

    def _write(self, batch: list[PredictionRecord]) -> None:
        backoff = self.settings.flush_interval_s
        while True:
            try:
                if self._log is None:
                    self._log = self._open_log()
                self._log.write(batch)
            except Exception as exc:
                self.failures.inc()
                log_event(
                    self._logger,
                    "prediction_log_write_failed",
                    level=logging.WARNING,
                    rows=len(batch),
                    error=str(exc),
                )
                with self._cond:
                    if self._stopping:
                        self._writing = 0
                        self.dropped.labels("shutdown").inc(len(batch))
                        self._cond.notify_all()
                        return
                    self._cond.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            self.written.inc(len(batch))
            with self._cond:
                self._writing = 0
                self._cond.notify_all()
            return
