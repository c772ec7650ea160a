"""The invalid-rate alert: a sliding window of processing time over the handed-over batches.

The alert *fires* when, over the last ``window``, at least ``min_events`` events were
handed over and the invalid share reached ``invalid_rate``; it *resolves* when the share
falls below it again. Each transition is one structured log line; a firing also bumps
the ``rtml_validator_alerts_total`` counter and, when ``webhook_url`` is set, POSTs the
alert as JSON (bounded by ``webhook_timeout``; a failure is logged, never raised).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from rtml.config import ValidatorAlertSettings
from rtml.services.logging import log_event
from rtml.timeutil import parse_duration, utc_now

TOP_CODES = 5


@dataclass(frozen=True, slots=True)
class AlertChange:
    """A transition of the alert: ``state`` is ``"firing"`` or ``"resolved"``."""

    state: str
    invalid_rate: float
    events: int
    invalid: int
    top_codes: dict[str, int]


class InvalidRateWindow:
    """Counts of the batches handed over in the last ``window`` seconds (a clock you give)."""

    def __init__(
        self, settings: ValidatorAlertSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.window_s = parse_duration(settings.window) / timedelta(seconds=1)
        self.firing = False
        self._clock = clock
        self._batches: deque[tuple[float, int, int, Counter[str]]] = deque()
        self._events = 0
        self._invalid = 0

    @property
    def rate(self) -> float:
        return self._invalid / self._events if self._events else 0.0

    def observe(self, events: int, invalid_by_code: Mapping[str, int]) -> AlertChange | None:
        """Add one batch; the alert's transition, if this batch caused one."""
        now = self._clock()
        invalid = sum(invalid_by_code.values())
        self._batches.append((now, events, invalid, Counter(invalid_by_code)))
        self._events += events
        self._invalid += invalid
        while self._batches and self._batches[0][0] < now - self.window_s:
            _, old_events, old_invalid, _ = self._batches.popleft()
            self._events -= old_events
            self._invalid -= old_invalid
        rate = self.rate
        over = self._events >= self.settings.min_events and rate >= self.settings.invalid_rate
        if over == self.firing:
            return None
        self.firing = over
        codes: Counter[str] = Counter()
        for *_, by_code in self._batches:
            codes.update(by_code)
        return AlertChange(
            state="firing" if over else "resolved",
            invalid_rate=rate,
            events=self._events,
            invalid=self._invalid,
            top_codes=dict(codes.most_common(TOP_CODES)),
        )


def announce(
    change: AlertChange,
    settings: ValidatorAlertSettings,
    *,
    logger: logging.Logger,
    context: Mapping[str, Any],
    client: httpx.Client | None = None,
) -> None:
    """Log the change and, for a firing alert with a webhook, POST it (never raises)."""
    body = {
        "alert": "rtml_validator_invalid_rate",
        "state": change.state,
        "invalid_rate": round(change.invalid_rate, 6),
        "threshold": settings.invalid_rate,
        "window": settings.window,
        "events": change.events,
        "invalid": change.invalid,
        "top_codes": change.top_codes,
        "at": utc_now().isoformat(timespec="milliseconds"),
        **context,
    }
    level = logging.WARNING if change.state == "firing" else logging.INFO
    log_event(logger, f"alert_{change.state}", level=level, **body)
    if settings.webhook_url is None or change.state != "firing":
        return
    timeout = parse_duration(settings.webhook_timeout) / timedelta(seconds=1)
    try:
        if client is not None:
            response = client.post(settings.webhook_url, json=body, timeout=timeout)
        else:
            response = httpx.post(settings.webhook_url, json=body, timeout=timeout)
        response.raise_for_status()
    except Exception as exc:  # a bad URL, a refused connection, a 500: log it, go on
        log_event(
            logger, "alert_webhook_failed", level=logging.WARNING, url=settings.webhook_url, error=str(exc)
        )
