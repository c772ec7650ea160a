"""The validation service: ``rtml run validator`` and ``rtml validate``.

* :class:`ValidatorService` -- raw topic -> valid topic, duplicates topic, dead letters;
  each raw event exactly once across crashes (:mod:`.service`);
* :func:`counts` -- where a project's raw events ended (:mod:`.counts`);
* :func:`validate_file` -- a JSONL file validated offline (:mod:`.offline`).

See ``docs/validator.md``.
"""

from rtml.services.validator.counts import Audit, audit, counts
from rtml.services.validator.offline import FileStats, validate_file
from rtml.services.validator.routing import DUPLICATE_EVENTS, EVENT_ID_HEADER
from rtml.services.validator.service import ValidatorService, ValidatorStats

__all__ = [
    "Audit",
    "DUPLICATE_EVENTS",
    "EVENT_ID_HEADER",
    "FileStats",
    "ValidatorService",
    "ValidatorStats",
    "audit",
    "counts",
    "validate_file",
]
