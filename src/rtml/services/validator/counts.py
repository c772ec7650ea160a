"""Where a project's raw events ended: the exact counts that must add up.

``valid + invalid + duplicates == produced`` is the validator's promise; the demo and the
tests check it with :func:`counts`, and :func:`audit` also checks that no event id is
twice in the valid topic nor both valid and a dead letter. Each reads its stores in full
(the topics with a throw-away consumer group, the dead letters through the sink), so it
is exact and costs O(events).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rtml.backends.dead_letter import DeadLetterSink, open_dead_letter_sink
from rtml.backends.event_log.base import EventLog
from rtml.project import VALID_EVENTS, Project
from rtml.services.validator.reading import count_records, read_topic
from rtml.services.validator.routing import DUPLICATE_EVENTS, EVENT_ID_HEADER, header


def counts(
    project: Project, *, log: EventLog | None = None, sink: DeadLetterSink | None = None
) -> dict[str, Any]:
    """``{"valid", "duplicates", "invalid", "invalid_by_code", "total"}`` of ``project``.

    ``log`` and ``sink`` default to the configured ones (opened and closed here).
    """
    own_log = log is None
    the_log = project.event_log() if log is None else log
    the_sink: DeadLetterSink | None = sink
    try:
        if the_sink is None:
            the_sink = open_dead_letter_sink(
                project.config.dead_letter, project=project.config.project, data_dir=project.data_dir
            )
        valid = count_records(the_log, project.topic(VALID_EVENTS))
        duplicates = count_records(the_log, project.topic(DUPLICATE_EVENTS))
        the_sink.flush()
        invalid = the_sink.count()
        by_code = the_sink.counts_by_code()
    finally:
        if sink is None and the_sink is not None:
            the_sink.close()
        if own_log:
            the_log.close()
    return {
        "valid": valid,
        "invalid": invalid,
        "duplicates": duplicates,
        "total": valid + invalid + duplicates,
        "invalid_by_code": by_code,
    }


@dataclass
class Audit:
    """The counts, and the event ids that break the promise (both lists should be empty)."""

    valid: int
    invalid: int
    duplicates: int
    invalid_by_code: dict[str, int]
    repeated_valid_ids: list[str] = field(default_factory=list)
    valid_and_invalid_ids: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.valid + self.invalid + self.duplicates


def audit(
    project: Project,
    *,
    log: EventLog | None = None,
    sink: DeadLetterSink | None = None,
    max_letters: int = 10_000,
) -> Audit:
    """Read the valid topic, the duplicates topic and the dead letters in full and check
    them against each other. Raises ``ValueError`` above ``max_letters`` dead letters
    (they are read into memory)."""
    own_log = log is None
    the_log = project.event_log() if log is None else log
    the_sink: DeadLetterSink | None = sink
    try:
        if the_sink is None:
            the_sink = open_dead_letter_sink(
                project.config.dead_letter, project=project.config.project, data_dir=project.data_dir
            )
        ids: Counter[str] = Counter()
        for batch in read_topic(the_log, project.topic(VALID_EVENTS), purpose="audit"):
            for record in batch:
                event_id = header(record, EVENT_ID_HEADER)
                ids[event_id.decode("utf-8", "replace") if event_id is not None else ""] += 1
        duplicates = count_records(the_log, project.topic(DUPLICATE_EVENTS))
        the_sink.flush()
        invalid = the_sink.count()
        if invalid > max_letters:
            raise ValueError(f"{invalid} dead letters are more than max_letters={max_letters}")
        letters = the_sink.recent(limit=max(invalid, 1))
        by_code = the_sink.counts_by_code()
    finally:
        if sink is None and the_sink is not None:
            the_sink.close()
        if own_log:
            the_log.close()
    invalid_ids = {letter.event_id for letter in letters if letter.event_id is not None}
    return Audit(
        valid=sum(ids.values()),
        invalid=invalid,
        duplicates=duplicates,
        invalid_by_code=by_code,
        repeated_valid_ids=sorted(i for i, n in ids.items() if n > 1),
        valid_and_invalid_ids=sorted(invalid_ids & set(ids)),
    )
