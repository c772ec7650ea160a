"""CSV files of the public data set -> events of the example's schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from tests.sample_data import sample_csv

import rtml
from rtml.datagen.csv_replay import (
    CSV_COLUMNS,
    csv_row_to_event,
    event_to_line,
    events_from_csv_lines,
    read_csv_events,
)
from rtml.errors import InvalidInputError

SCHEMA_FILE = Path(rtml.__file__).parent / "examples" / "ecommerce" / "schemas" / "event.schema.json"
HEADER = ",".join(CSV_COLUMNS)


@pytest.fixture
def sample() -> Path:
    return sample_csv()


def test_sample_gives_one_valid_event_per_row(sample: Path) -> None:
    events = list(read_csv_events(sample))
    assert len(events) == 41
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    for event in events:
        validator.validate(event)
    first = events[0]
    assert first["event_time"] == "2019-10-01T00:00:34Z"
    assert first["product_id"] == 19669062
    assert first["category_id"] == 2053013563810775923
    assert first["price"] == 728.68
    assert first["user_session"] == "3b8faa18-37f8-a88b-17fc-695a07a0ca6e"
    assert list(first) == ["event_id", *CSV_COLUMNS]


def test_empty_cells_become_null_and_zero_price_stays(sample: Path) -> None:
    events = list(read_csv_events(sample))
    assert events[1]["category_code"] is None
    assert any(e["brand"] is None for e in events)
    last = events[-1]
    assert last["user_session"] is None
    assert last["price"] == 0.0


def test_event_ids_are_stable_across_reads_and_distinct(sample: Path) -> None:
    first = [e["event_id"] for e in read_csv_events(sample)]
    again = [e["event_id"] for e in read_csv_events(sample)]
    assert first == again
    assert len(set(first)) == 41
    lines = [event_to_line(e) for e in read_csv_events(sample)]
    assert lines == [event_to_line(e) for e in read_csv_events(sample)]


def test_limit(sample: Path) -> None:
    assert len(list(read_csv_events(sample, limit=5))) == 5


def test_cells_that_do_not_parse_pass_through_as_strings() -> None:
    event = csv_row_to_event(
        ["yesterday", "view", "12a", "2053013555631882655", "", "", "12.x", "-", "s", "extra"]
    )
    assert event["event_time"] == "yesterday"
    assert event["product_id"] == "12a"
    assert event["price"] == "12.x"
    assert event["user_id"] == "-"
    assert event["_extra"] == ["extra"]
    short = csv_row_to_event(["2019-10-01 00:00:34 UTC", "view"])
    assert set(short) == {"event_id", "event_time", "event_type"}
    assert csv_row_to_event(["a", "nan"])["event_type"] == "nan"
    assert csv_row_to_event(["a", "b", "1", "2", "", "", "inf"])["price"] == "inf"


def test_the_same_row_gets_the_same_id_wherever_it_is() -> None:
    row = "2019-10-01 00:00:34 UTC,view,1,2,,,3.5,4,s"
    a = list(events_from_csv_lines([HEADER + "\n", row + "\n"]))
    b = list(events_from_csv_lines([HEADER + "\r\n", "x,y,1,2,,,3,4,s\r\n", row + "\r\n"]))
    assert a[0]["event_id"] == b[1]["event_id"]
    assert a[0]["event_id"] != b[0]["event_id"]


def test_bad_header_names_the_expected_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,type\n1,2\n")
    with pytest.raises(InvalidInputError) as info:
        list(read_csv_events(bad))
    assert HEADER in str(info.value)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InvalidInputError, match="empty"):
        list(read_csv_events(empty))


def test_missing_file_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such file"):
        read_csv_events(tmp_path / "nope.csv")


def test_header_with_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(("\ufeff" + HEADER + "\n2019-10-01 00:00:34 UTC,view,1,2,,,3.5,4,s\n").encode())
    assert len(list(read_csv_events(path))) == 1
