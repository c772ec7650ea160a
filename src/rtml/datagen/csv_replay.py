"""Rows of the public e-commerce CSV files -> JSON events of the example's schema.

The files ("eCommerce behavior data from multi category store", 2019-Oct.csv, ...) have
the header ``event_time,event_type,product_id,category_id,category_code,brand,price,
user_id,user_session``, times like ``2019-10-01 00:00:34 UTC`` and empty cells for
missing values. Each row becomes one event:

* empty cell -> ``null``; ``event_time`` -> ISO-8601 UTC (``2019-10-01T00:00:34Z``);
  ids -> integers, ``price`` -> a number; ``event_type`` and the other texts as they are;
* a cell that does not parse stays the string it was (so the validator rejects the event
  with a reason, and nothing is lost); cells past the ninth go to ``_extra``;
* ``event_id`` = ``uuid5(EVENT_ID_NAMESPACE, the row's cells joined by ",")``: the same row
  always gets the same id, so a file replayed twice is deduplicated downstream (and so is
  a row repeated byte for byte in a file).

Files are streamed row by row, never loaded whole.
"""

from __future__ import annotations

import csv
import json
import math
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rtml.errors import InvalidInputError
from rtml.timeutil import parse_timestamp

CSV_COLUMNS = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)
EVENT_ID_NAMESPACE = uuid.UUID("6f1c1f0e-5d3a-4f57-9a43-1b2f0d8e7c11")
_INT_COLUMNS = frozenset({"product_id", "category_id", "user_id"})
_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _convert(column: str, cell: str) -> Any:
    if cell == "":
        return None
    if column in _INT_COLUMNS:
        return int(cell) if _INTEGER.match(cell) else cell
    if column == "price":
        if _NUMBER.match(cell):
            value = float(cell)
            if math.isfinite(value):
                return value
        return cell
    if column == "event_time":
        try:
            return parse_timestamp(cell).isoformat().replace("+00:00", "Z")
        except ValueError:
            return cell
    return cell


def csv_row_to_event(cells: Sequence[str]) -> dict[str, Any]:
    """The event of one data row (see the module docstring for the mapping)."""
    event: dict[str, Any] = {"event_id": str(uuid.uuid5(EVENT_ID_NAMESPACE, ",".join(cells)))}
    for column, cell in zip(CSV_COLUMNS, cells, strict=False):
        event[column] = _convert(column, cell)
    if len(cells) > len(CSV_COLUMNS):
        event["_extra"] = list(cells[len(CSV_COLUMNS) :])
    return event


def event_to_line(event: dict[str, Any]) -> bytes:
    """Compact JSON bytes of ``event`` (keys in their order)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def events_from_csv_lines(lines: Iterable[str], source: str = "<csv>") -> Iterator[dict[str, Any]]:
    """Events of the CSV text ``lines`` (header first); blank lines are skipped.

    Raises :class:`~rtml.errors.InvalidInputError` when the header is not the data set's.
    """
    rows = csv.reader(lines)
    header = next(rows, None)
    if header is None:
        raise InvalidInputError(
            f"{source}: the file is empty. Fix: give a CSV file whose first line is the "
            f"header {','.join(CSV_COLUMNS)}"
        )
    names = tuple(h.strip().lstrip("\ufeff").strip() for h in header)
    if names != CSV_COLUMNS:
        got = ",".join(header)
        got = got if len(got) <= 120 else got[:117] + "..."
        raise InvalidInputError(
            f"{source}: unexpected CSV header {got!r}. Expected the header of "
            f"the public e-commerce data set: {','.join(CSV_COLUMNS)}. Fix: replay one of "
            "those files as it is, or convert yours to events and use --file"
        )
    for row in rows:
        if row:
            yield csv_row_to_event(row)


def check_file(path: str | Path) -> Path:
    """``path`` as a ``Path``; :class:`~rtml.errors.InvalidInputError` if it is no file."""
    source = Path(path)
    if not source.is_file():
        raise InvalidInputError(f"{source}: no such file. Fix: check the path")
    return source


def decoded_lines(raw_lines: Iterable[bytes], source: str = "<csv>") -> Iterator[str]:
    """UTF-8 text of ``raw_lines``; an undecodable line raises InvalidInputError."""
    for n, raw in enumerate(raw_lines, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"{source}: line {n} is not UTF-8 ({exc.reason}). Fix: re-encode the file as UTF-8"
            ) from None


def read_csv_events(path: str | Path, *, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Stream the events of the CSV file at ``path`` (at most ``limit`` of them).

    Raises :class:`~rtml.errors.InvalidInputError` at once for a missing file, and
    while iterating for a bad header.
    """
    source = check_file(path)
    return _read(source, limit)


def _read(source: Path, limit: int | None) -> Iterator[dict[str, Any]]:
    with source.open("rb") as f:
        events = events_from_csv_lines(decoded_lines(f, str(source)), str(source))
        for n, event in enumerate(events):
            if limit is not None and n >= limit:
                return
            yield event
