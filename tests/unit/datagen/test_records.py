"""Raw lines -> event log records."""

from __future__ import annotations

from rtml.datagen.records import SOURCE_HEADER, to_log_record


def test_record_keeps_the_line_and_keys_by_user() -> None:
    line = b'{"event_id":"a","event_time":"2019-10-01T00:00:01.500Z","user_id":42}'
    record = to_log_record(line)
    assert record.value == line
    assert record.key == b"42"
    assert record.timestamp_ms == 1569888001500
    assert record.headers == (SOURCE_HEADER,)


def test_unparseable_lines_get_no_key_or_timestamp() -> None:
    for line in (b'{"event_id":"a","event_time":"yesterday","user_id":"abc"}', b'{"event_id":', b"[1]"):
        record = to_log_record(line)
        assert record.value == line
        assert record.key is None
        assert record.timestamp_ms is None
    assert to_log_record(b'{"user_id":true}').key is None
    assert to_log_record(b'{"user_id":"77"}').key == b"77"
