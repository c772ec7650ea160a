"""``rtml validate``: a JSONL file validated offline, with the validator's own code and dedupe.

Each non-empty input line is one raw event (a trailing ``\\r`` is dropped with the
``\\n``). Valid events go to the valid file as their normalized JSON, one per line, in
input order; duplicates (by event id, within the dedupe horizon) are dropped and
counted; invalid lines go to the invalid file as one JSON object each::

    {"line": 7, "code": "wrong_type", "message": "$.price: expected number, got string \\"12.x\\"",
     "field": "$.price", "event_id": "ab12...", "raw": "{...}", "raw_encoding": "utf-8"}

``raw`` is the original line: as text when it is UTF-8, else base64 with
``"raw_encoding": "base64"``.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rtml.config import ValidatorSettings
from rtml.core.validation import Invalid, Valid
from rtml.errors import InvalidInputError
from rtml.project import Project
from rtml.services.validator.factory import build_deduper, build_validator, project_source
from rtml.services.validator.routing import lenient_event_id

BATCH = 5000


@dataclass
class FileStats:
    lines: int = 0  # non-empty input lines (events)
    blank: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    invalid_by_code: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "blank": self.blank,
            "valid": self.valid,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "invalid_by_code": dict(self.invalid_by_code.most_common()),
        }


def validate_file(
    project: Project,
    source_file: Path,
    valid_file: Path,
    invalid_file: Path,
    *,
    settings: ValidatorSettings | None = None,
) -> FileStats:
    """Validate ``source_file`` into ``valid_file`` and ``invalid_file`` (overwritten)."""
    settings = settings or project.config.validator
    if not source_file.is_file():
        raise InvalidInputError(f"{source_file} is not a file. Fix: pass --in with a JSONL file")
    validator = build_validator(project, settings)
    id_field = project_source(project, settings).id_field
    deduper = build_deduper(settings)
    stats = FileStats()
    with source_file.open("rb") as src, valid_file.open("wb") as valid, invalid_file.open("wb") as invalid:
        for numbers, lines in _batches(src, stats):
            for number, raw, outcome in zip(numbers, lines, validator.validate_many(lines), strict=True):
                if isinstance(outcome, Valid):
                    if deduper.is_duplicate(outcome.event_id, outcome.event_time_ms):
                        stats.duplicates += 1
                    else:
                        valid.write(outcome.payload + b"\n")
                        stats.valid += 1
                else:
                    invalid.write(_invalid_line(number, raw, outcome, id_field) + b"\n")
                    stats.invalid += 1
                    stats.invalid_by_code[outcome.code] += 1
    return stats


def _batches(src: IO[bytes], stats: FileStats) -> Iterator[tuple[list[int], list[bytes]]]:
    numbers: list[int] = []
    lines: list[bytes] = []
    for number, line in enumerate(src, start=1):
        raw = line[:-1] if line.endswith(b"\n") else line
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw:
            stats.blank += 1
            continue
        stats.lines += 1
        numbers.append(number)
        lines.append(raw)
        if len(lines) >= BATCH:
            yield numbers, lines
            numbers, lines = [], []
    if lines:
        yield numbers, lines


def _invalid_line(number: int, raw: bytes, outcome: Invalid, id_field: str) -> bytes:
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    line = {
        "line": number,
        "code": outcome.code,
        "message": outcome.message,
        "field": outcome.field_path,
        "event_id": lenient_event_id(raw, id_field),
        "raw": text,
        "raw_encoding": encoding,
    }
    # ensure_ascii: a lone surrogate in the message cannot break the output's encoding
    return json.dumps(line, ensure_ascii=True).encode("ascii")
