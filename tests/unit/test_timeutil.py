from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rtml.timeutil import format_duration, parse_duration, parse_timestamp


@pytest.mark.parametrize(
    ("text", "value"),
    [("500ms", timedelta(milliseconds=500)), ("30s", timedelta(seconds=30)), ("5m", timedelta(minutes=5)),
     ("1h", timedelta(hours=1)), ("7d", timedelta(days=7)), ("2w", timedelta(days=14))],
)  # fmt: skip
def test_parse_duration(text: str, value: timedelta) -> None:
    assert parse_duration(text) == value


@pytest.mark.parametrize("bad", ["", "1", "1 hour", "h", "-5m", "1.5h", "5M"])
def test_parse_duration_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("value", "text"),
    [(timedelta(days=7), "7d"), (timedelta(minutes=90), "90m"), (timedelta(hours=1), "1h"),
     (timedelta(days=30), "30d"), (timedelta(milliseconds=1500), "1500ms")],
)  # fmt: skip
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


@pytest.mark.parametrize(
    "text",
    ["2019-10-01 00:00:34 UTC", "2019-10-01T00:00:34Z", "2019-10-01T02:00:34+02:00"],
)
def test_parse_timestamp_to_utc(text: str) -> None:
    assert parse_timestamp(text) == datetime(2019, 10, 1, 0, 0, 34, tzinfo=UTC)


def test_parse_timestamp_refuses_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        parse_timestamp("2019-10-01T00:00:34")
