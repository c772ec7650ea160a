"""The demo's traffic: one generated stream, cut into the history and the live continuation.

The generator cannot resume a stream, so the demo generates history and live traffic in one
call, at the history's rate (``events / days`` events per simulated day): ``events`` lines of
history plus as many lines as ``live_hours`` more simulated hours hold. The first ``events``
lines are the history (ingested, validated, featurized and trained on); the rest arrive
during the live phase. The same users, products, prices and planted probability run on
across the cut, and a purchase after the cut labels a cart before it.

The live lines are sent on a simulated clock that starts where the history ends and runs
``speed`` times faster than the wall clock: a line is sent once the clock passes the newest
valid event time so far (the project's validator says which lines are valid). A late valid
line goes with its neighbours; an invalid one, whatever time it claims (the generator's
malformed lines copy an event from anywhere in the stream), goes with the line before it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from rtml.core.validation import Valid, Validator
from rtml.datagen import generate
from rtml.datagen.ecommerce import Generation
from rtml.timeutil import from_millis, to_millis

HOUR_MS = 3_600_000
TAIL = 200  # history lines looked at for where the history ends


@dataclass(frozen=True, kw_only=True)
class Cart:
    """A valid cart event of the live traffic: a prediction request when it is sent."""

    event_id: str
    t_ms: int
    event: dict[str, object]  # the event as sent (the request's keys and fields come from it)


@dataclass(frozen=True, kw_only=True)
class LiveTraffic:
    start_ms: int  # simulated time where the history ends and the live phase starts
    end_ms: int  # the last live event time
    lines: list[bytes]
    due_ms: list[int]  # per line: the simulated time it is sent at (non-decreasing)
    carts: dict[int, Cart]  # line index -> the cart to predict (first copy of each)

    @property
    def span_ms(self) -> int:
        return max(0, self.end_ms - self.start_ms)


def live_lines(events: int, days: float, live_hours: float) -> int:
    """Lines of live traffic: ``live_hours`` at the history's rate."""
    return math.ceil(events * live_hours / (days * 24.0)) if live_hours > 0 else 0


def generate_with_live(
    events: int, *, seed: int, days: float, dirty_rate: float, live_hours: float
) -> tuple[Generation, int]:
    """One stream of ``events`` history lines and the live lines after them; returns it and
    the number of history lines (``events``)."""
    extra = live_lines(events, days, live_hours)
    total = events + extra
    generation = generate(total, seed=seed, days=days * total / events, dirty_rate=dirty_rate)
    return generation, events


def _time_ms(line: bytes) -> tuple[int | None, dict[str, object] | None]:
    try:
        event = json.loads(line)
    except ValueError:
        return None, None
    if not isinstance(event, dict):
        return None, None
    text = event.get("event_time")
    if not isinstance(text, str):
        return None, event
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None, event
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_millis(moment), event


def plan_live(generation: Generation, history: int, validator: Validator) -> LiveTraffic:
    """The live lines of ``generation`` (after the first ``history``), when each is sent, and
    which are the carts to predict (the generator's valid carts, by event id)."""
    last = generation.summary.last_event_time
    now_ms = to_millis(last) if last is not None else 0
    tail = validator.validate_many(generation.lines[max(0, history - TAIL) : history], now_ms=now_ms)
    start = max((o.event_time_ms for o in tail if isinstance(o, Valid)), default=now_ms)
    valid_carts = {row.event_id for row in generation.truth}
    lines = generation.lines[history:]
    outcomes = validator.validate_many(lines, now_ms=now_ms)
    due: list[int] = []
    carts: dict[int, Cart] = {}
    seen: set[str] = set()
    current = start
    end = start
    for i, (line, outcome) in enumerate(zip(lines, outcomes, strict=True)):
        if isinstance(outcome, Valid):
            current = max(current, outcome.event_time_ms)
            end = max(end, current)
        due.append(current)
        t, event = _time_ms(line)
        if event is None or t is None or event.get("event_type") != "cart":
            continue
        event_id = event.get("event_id")
        if isinstance(event_id, str) and event_id in valid_carts and event_id not in seen:
            seen.add(event_id)
            carts[i] = Cart(event_id=event_id, t_ms=t, event=event)
    return LiveTraffic(start_ms=start, end_ms=end, lines=lines, due_ms=due, carts=carts)


def iso_ms(t_ms: int) -> str:
    """``2019-10-15T12:00:00.000Z``: the form ``?at=`` takes."""
    return from_millis(t_ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")
