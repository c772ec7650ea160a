"""Event timestamps: parsed once, normalized to aware UTC datetimes and epoch milliseconds.

Accepted: RFC 3339 / ISO-8601 with a zone (``2019-10-01T00:00:34.123Z``,
``2019-10-01T02:00:34+02:00``) and the public data set's CSV form
(``2019-10-01 00:00:34 UTC``). A timestamp without a zone is refused: guessing one
would shift events silently.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import msgspec

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
_CSV_FORM = re.compile(r"(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?) UTC")
_MAX_TEXT = 64


def parse_event_time(text: str) -> datetime:
    """An aware UTC datetime, or ``ValueError`` saying what is wrong with ``text``.

    RFC 3339 goes through msgspec's parser first -- the same one the fast path decodes
    with -- so both paths give the same instant for the same text.
    """
    if len(text) > _MAX_TEXT:
        raise ValueError(f"is {len(text)} characters long; a timestamp is at most {_MAX_TEXT}")
    try:
        parsed = msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        parsed = _parse_other_forms(text.strip())
    if parsed.tzinfo is None:
        raise ValueError("has no timezone; add 'Z' or an offset such as '+02:00'")
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("is out of the range of representable times") from None


def _parse_other_forms(text: str) -> datetime:
    csv = _CSV_FORM.fullmatch(text)
    if csv is not None:
        text = f"{csv.group(1)}T{csv.group(2)}+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "is not an ISO-8601 timestamp with a zone (e.g. '2019-10-01T00:00:34Z' "
            "or '2019-10-01 00:00:34 UTC')"
        ) from None


def epoch_ms(value: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (exact, floored)."""
    return (value - EPOCH) // ONE_MS


def iso_ms(ms: int) -> str:
    """``2019-10-01T00:00:34.123Z`` for a message."""
    return (EPOCH + ms * ONE_MS).isoformat(timespec="milliseconds").replace("+00:00", "Z")
