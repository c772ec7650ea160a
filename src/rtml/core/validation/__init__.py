"""Event validation: pure (no I/O, no backend), fast, with a precise reason for each invalid event.

* :class:`Validator` -- ``Validator.build(source, schema)`` then ``validate(raw)`` /
  ``validate_many(raws)`` -> :class:`Valid` | :class:`Invalid`;
* :class:`Deduper` -- drops repeated event ids within a horizon of event time;
* ``ERROR_CODES`` -- the stable codes an :class:`Invalid` carries.

See ``docs/validation.md``.
"""

from rtml.core.validation.dedupe import Deduper
from rtml.core.validation.outcome import ERROR_CODES, ErrorCode, Invalid, Outcome, Valid
from rtml.core.validation.parse import Limits
from rtml.core.validation.validator import Validator

__all__ = ["ERROR_CODES", "Deduper", "ErrorCode", "Invalid", "Limits", "Outcome", "Valid", "Validator"]
