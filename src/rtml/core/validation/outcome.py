"""What validating one raw event gives: :class:`Valid` or :class:`Invalid` with a reason."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

import msgspec

ErrorCode = Literal[
    "too_large",  # the raw event is over the size limit
    "not_utf8",  # bytes that are not UTF-8, or a string with a lone surrogate
    "not_json",  # not one JSON value (cut short, trailing bytes, empty...)
    "nan_or_infinity",  # NaN, Infinity or a number too large for a double
    "too_deep",  # nested deeper than the depth limit
    "not_object",  # valid JSON, but not an object
    "unknown_schema_id",  # a Confluent wire-format header naming an id not known
    "missing_field",  # a required field (or the id / timestamp field) is absent
    "extra_field",  # a field the schema does not allow (additionalProperties: false)
    "wrong_type",  # e.g. a string where the schema says number
    "not_in_enum",  # a value outside the schema's enum / const
    "out_of_range",  # minimum/maximum, minLength/maxLength, minItems/maxItems, multipleOf
    "bad_format",  # pattern, or format date-time on a field that is not the timestamp
    "bad_timestamp",  # the timestamp field does not parse, has no timezone or is null
    "future_timestamp",  # the timestamp is further ahead of now than the allowed skew
    "rule_failed",  # one of the source's SQL rules is FALSE (or cannot be evaluated)
]
ERROR_CODES: tuple[str, ...] = get_args(ErrorCode)


class Valid(msgspec.Struct, frozen=True, gc=False):
    """A valid event: its id, its event time (ms since the epoch, UTC) and the normalized
    JSON it is routed on with (timestamps in UTC, numbers as the schema types them)."""

    ok: ClassVar[bool] = True
    event_id: str
    event_time_ms: int
    payload: bytes
    schema_id: int | None = None  # from a Confluent wire-format header, if there was one

    @property
    def event(self) -> dict[str, Any]:
        """The normalized event as a dict (decoded from ``payload`` on each call)."""
        decoded: dict[str, Any] = msgspec.json.decode(self.payload)
        return decoded


class Invalid(msgspec.Struct, frozen=True, gc=False):
    """An invalid event: a stable code, a message naming the field, and the raw bytes."""

    ok: ClassVar[bool] = False
    code: ErrorCode
    message: str  # e.g. '$.price: expected number, got string "12.x"'
    field_path: str | None  # e.g. "$.price"; None when no one field is at fault
    raw: bytes


Outcome = Valid | Invalid


class Failure(Exception):
    """Raised inside the precise path; becomes an :class:`Invalid`."""

    def __init__(self, code: ErrorCode, detail: str, path: str | None = None) -> None:
        super().__init__(detail)
        self.code: ErrorCode = code
        self.detail = detail
        self.path = path

    @property
    def message(self) -> str:
        return f"{self.path}: {self.detail}" if self.path else self.detail

    def invalid(self, raw: bytes) -> Invalid:
        return Invalid(code=self.code, message=self.message, field_path=self.path, raw=raw)
