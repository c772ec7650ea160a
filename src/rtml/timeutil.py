"""Durations and timestamps, parsed in exactly one place.

rtml uses timezone-aware UTC datetimes everywhere and writes durations as strings
such as ``"90s"``, ``"5m"``, ``"1h"``, ``"7d"``, ``"2w"`` (or ``timedelta`` objects).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$")


def parse_duration(value: str | timedelta) -> timedelta:
    """Parse ``"5m"``-style strings (units ms, s, m, h, d, w) or pass a timedelta through.

    Raises ``ValueError`` with a message that shows the accepted forms.
    """
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as '5m' or '1h', got {value!r}")
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(
            f"{value!r} is not a duration; write an integer and a unit: "
            "'500ms', '30s', '5m', '1h', '7d' or '2w'"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(value: timedelta) -> str:
    """The shortest exact string form of ``value`` in d, h, m, s or ms (``"1h"``, ``"7d"``)."""
    ms = int(value / timedelta(milliseconds=1))
    for unit in ("d", "h", "m", "s", "ms"):
        size = int(_UNITS[unit] / timedelta(milliseconds=1))
        if ms % size == 0 and ms >= size:
            return f"{ms // size}{unit}"
    return "0s"


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_utc(value: datetime) -> datetime:
    """Attach UTC to a naive datetime is refused; convert an aware one to UTC."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}: give a timezone (e.g. '...Z')")
    return value.astimezone(UTC)


def parse_timestamp(value: str) -> datetime:
    """Parse ISO-8601 (``2019-10-01T00:00:34Z``) or the e-commerce CSV form
    (``2019-10-01 00:00:34 UTC``) into an aware UTC datetime."""
    text = value.strip()
    if text.endswith(" UTC"):
        text = text[:-4] + "+00:00"
    elif text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return to_utc(parsed)


def to_millis(value: datetime) -> int:
    return int(to_utc(value).timestamp() * 1000)


def from_millis(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
