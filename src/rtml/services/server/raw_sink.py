"""The raw topic as the ingestion endpoint sees it: opened on first use, shared by requests.

Writes are serialized: one request's records are produced and flushed before the next
request's are, so that a 200 answer means *that request's* events are durable (a shared
Kafka producer reports failed deliveries per flush, not per caller). A log that cannot
be reached is not retried for ``retry_after_s``; meanwhile requests get 503 at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from rtml.backends.event_log.base import EventLog
from rtml.errors import BackendUnavailableError, ConfigError, MissingExtraError, RtmlError
from rtml.project import RAW_EVENTS, Project
from rtml.raw_records import RawRecordEncoder
from rtml.services.server.settings import IngestSettings


class EventLogUnavailableError(BackendUnavailableError):
    """The event log cannot take events now; the client should retry later."""


class RawEventSink:
    """Writes raw events to ``<project>.events.raw``; thread-safe."""

    def __init__(
        self,
        project: Project,
        settings: IngestSettings,
        *,
        open_encoder: Callable[[Project], RawRecordEncoder] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if open_encoder is None:
            from rtml.producer import raw_encoder

            open_encoder = raw_encoder
        self.project = project
        self.topic = project.topic(RAW_EVENTS)
        self.settings = settings
        self._open_encoder = open_encoder
        self._clock = clock
        self._lock = threading.Lock()
        self._log: EventLog | None = None
        self._encoder: RawRecordEncoder | None = None
        self._failed_at: float | None = None
        self._failure = ""

    @property
    def is_open(self) -> bool:
        return self._log is not None

    def write(self, raws: Sequence[bytes]) -> None:
        """Append one record per raw event and wait until all are durable, or raise
        :class:`EventLogUnavailableError` (a 503)."""
        encoder = self.encoder()
        records = [encoder.record(raw) for raw in raws]
        with self._lock:
            log, _ = self._open()
            try:
                log.produce(self.topic, records)
                log.flush(self.settings.flush_timeout_s)
            except (ConfigError, MissingExtraError):
                raise
            except RtmlError as exc:
                raise EventLogUnavailableError(
                    f"the event log did not take the {len(records)} event(s): {exc}. "
                    f"Retry in {self.settings.retry_after_s} s"
                ) from exc

    def encoder(self) -> RawRecordEncoder:
        """The record encoder (opening the log and resolving the schema id on first use)."""
        with self._lock:
            return self._open()[1]

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def _open(self) -> tuple[EventLog, RawRecordEncoder]:
        if self._log is not None and self._encoder is not None:
            return self._log, self._encoder
        now = self._clock()
        if self._failed_at is not None and now - self._failed_at < self.settings.retry_after_s:
            raise EventLogUnavailableError(self._failure)
        log: EventLog | None = None
        try:
            log = self.project.event_log()
            log.create_topic(self.topic)
            encoder = self._encoder or self._open_encoder(self.project)
        except (ConfigError, MissingExtraError):
            if log is not None:
                log.close()
            raise
        except RtmlError as exc:
            if log is not None:
                log.close()
            self._failed_at = now
            self._failure = f"the event log cannot be opened: {exc}. Retry in {self.settings.retry_after_s} s"
            raise EventLogUnavailableError(self._failure) from exc
        self._log, self._encoder, self._failed_at = log, encoder, None
        return log, encoder
