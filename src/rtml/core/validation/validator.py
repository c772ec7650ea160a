"""``Validator``: raw event bytes in, :class:`Valid` or :class:`Invalid` out. Pure: no I/O.

Each event goes through the *fast path* first (msgspec decodes it straight into a struct
compiled from the schema, then the timestamp, the id and the rules are checked on the
struct). Anything the fast path does not accept -- an invalid event, or a valid one in
an unusual form (a CSV timestamp, ``3.0`` for an integer, a Confluent header with an
unknown id) -- is run again through the *precise path*, which decides and says exactly
why. See ``docs/validation.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from rtml.core.sqleval import SqlEvalError, compile_expression
from rtml.core.validation.avro import avro_to_json_schema
from rtml.core.validation.describe import child, show, typed
from rtml.core.validation.fastpath import FastDecoder, build_fast_decoder
from rtml.core.validation.outcome import Failure, Invalid, Outcome, Valid
from rtml.core.validation.parse import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    HEADER_SIZE,
    Limits,
    parse_document,
)
from rtml.core.validation.schema_check import Check, compile_root
from rtml.core.validation.timestamps import EPOCH, ONE_MS, epoch_ms, iso_ms, parse_event_time
from rtml.definitions.source import Source
from rtml.definitions.sql import SqlExpression, check_columns
from rtml.errors import DefinitionError
from rtml.timeutil import format_duration, parse_duration, utc_now


class Validator:
    """Validates the raw events of one source. Build it with :meth:`build`."""

    def __init__(
        self,
        *,
        schema: Mapping[str, Any],
        timestamp_field: str,
        id_field: str,
        rules: Sequence[SqlExpression],
        max_future_skew: timedelta,
        now: Callable[[], datetime],
        known_schema_ids: Collection[int] | None,
        limits: Limits,
        fast: bool,
    ) -> None:
        props = schema.get("properties")
        if not isinstance(props, Mapping):
            raise DefinitionError("the schema has no properties", fix="describe the event's fields")
        for role, name in (("timestamp_field", timestamp_field), ("id_field", id_field)):
            if name not in props:
                raise DefinitionError(
                    f"the schema has no property {name!r}", field=role, fix=f"declare {name!r} in the schema"
                )
        for rule in rules:
            check_columns(rule, set(props), obj="source", field="rules")
        self.schema = schema
        self.timestamp_field = timestamp_field
        self.id_field = id_field
        self.rules = tuple(rules)
        self.max_future_skew = max_future_skew
        self.limits = limits
        self._now = now
        self._skew_ms = max_future_skew // ONE_MS
        self._known = frozenset(known_schema_ids) if known_schema_ids is not None else None
        self._check: Check = compile_root(schema, timestamp_field=timestamp_field)
        self._precise_rules = [(r, compile_expression(r)) for r in self.rules]
        self._fast: FastDecoder | None = None
        self._fast_rules: list[Callable[[Any], Any]] = []
        if fast:
            self._fast = build_fast_decoder(
                schema, timestamp_field=timestamp_field, id_field=id_field, rules=self.rules
            )
        if self._fast is not None:
            column, absorbed = self._fast.getter, self._fast.absorbed_rules
            self._fast_rules = [
                compile_expression(r, column=column, raw=True)
                for i, r in enumerate(self.rules)
                if i not in absorbed
            ]

    @classmethod
    def build(
        cls,
        source: Source,
        schema_document: Mapping[str, Any],
        *,
        max_future_skew: str | timedelta = "5m",
        now: Callable[[], datetime] = utc_now,
        known_schema_ids: Collection[int] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
        fast: bool = True,
    ) -> Validator:
        """The validator of ``source`` for events of ``schema_document`` (JSON Schema, or
        an Avro record schema for JSON-encoded events).

        ``now`` is the clock future timestamps are judged against (aware datetimes);
        ``known_schema_ids``, when given, are the registry ids a Confluent wire-format
        header may name (``None`` accepts any). ``fast=False`` runs the precise path only.
        """
        if max_bytes < HEADER_SIZE + 2 or max_depth < 1:
            raise DefinitionError(
                f"max_bytes={max_bytes}, max_depth={max_depth} leave no room for an event",
                fix="use max_bytes >= 7 and max_depth >= 1",
            )
        document = dict(schema_document)
        if document.get("type") == "record":
            document = avro_to_json_schema(document)
        return cls(
            schema=document,
            timestamp_field=source.timestamp_field,
            id_field=source.id_field,
            rules=source.rule_expressions,
            max_future_skew=parse_duration(max_future_skew),
            now=now,
            known_schema_ids=known_schema_ids,
            limits=Limits(max_bytes=max_bytes, max_depth=max_depth),
            fast=fast,
        )

    @property
    def has_fast_path(self) -> bool:
        return self._fast is not None

    def validate(self, raw: bytes, *, now_ms: int | None = None) -> Outcome:
        """The outcome of one raw event (a Kafka value, an NDJSON line...)."""
        return self.validate_many((raw,), now_ms=now_ms)[0]

    def validate_many(self, raws: Iterable[bytes], *, now_ms: int | None = None) -> list[Outcome]:
        """The outcomes of ``raws``, in order. Future timestamps are judged against
        ``now_ms`` (ms since the epoch, e.g. when the batch was received) or, by default,
        the validator's clock, read once per call."""
        if now_ms is None:
            now_ms = epoch_ms(self._now())
        fast = self._fast
        if fast is None:
            return [self.validate_precise(raw, now_ms=now_ms) for raw in raws]
        decode, encode = fast.decode, fast.encode
        get_time = fast.getter(self.timestamp_field)
        time_attr, other_times = fast.attribute[self.timestamp_field], fast.other_times
        get_id = fast.getter(self.id_field)
        rules = self._fast_rules
        known, max_bytes, latest_ms = self._known, self.limits.max_bytes, now_ms + self._skew_ms
        utc, epoch, one_ms = UTC, EPOCH, ONE_MS
        out: list[Outcome] = []
        append = out.append
        for raw in raws:
            try:
                if len(raw) > max_bytes:
                    raise ValueError
                schema_id = None
                if raw[0] == 0:
                    schema_id = int.from_bytes(raw[1:HEADER_SIZE], "big")
                    if len(raw) < HEADER_SIZE or (known is not None and schema_id not in known):
                        raise ValueError
                    event = decode(memoryview(raw)[HEADER_SIZE:])
                else:
                    event = decode(raw)
                time = get_time(event)
                if time.tzinfo is not utc:
                    time = time.astimezone(utc)
                    setattr(event, time_attr, time)
                time_ms = (time - epoch) // one_ms
                for attr in other_times:  # other date-time fields: to UTC as well
                    value = getattr(event, attr)
                    if isinstance(value, datetime) and value.tzinfo is not utc:
                        setattr(event, attr, value.astimezone(utc))
                if time_ms > latest_ms:
                    raise ValueError
                for rule in rules:
                    if rule(event) is False:
                        raise ValueError
                event_id = get_id(event)
                if event_id.__class__ is not str or not event_id:
                    raise ValueError
                append(Valid(event_id, time_ms, encode(event), schema_id))
            except Exception:  # anything unusual: the precise path decides and explains
                append(self.validate_precise(raw, now_ms=now_ms))
        return out

    def validate_precise(self, raw: bytes, *, now_ms: int | None = None) -> Outcome:
        """The precise path alone: slower, and the reference the fast path agrees with."""
        if now_ms is None:
            now_ms = epoch_ms(self._now())
        if not isinstance(raw, bytes):  # a bytearray or memoryview from a client library
            raw = bytes(raw)
        try:
            document, schema_id = parse_document(raw, self.limits, self._known)
            event = self._check(document, "$")
            event_id = self._event_id(event)
            time_ms = self._event_time(event, now_ms)
            self._check_rules(event)
            payload = _encode(event)
        except Failure as failure:
            return failure.invalid(raw)
        return Valid(event_id, time_ms, payload, schema_id)

    def _event_id(self, event: dict[str, Any]) -> str:
        path = child("$", self.id_field)
        value = event.get(self.id_field)
        if value is None:
            raise Failure("missing_field", "the event id is missing or null", path)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise Failure("wrong_type", f"expected a string or integer id, got {typed(value)}", path)
        if not value:
            raise Failure("missing_field", "the event id is empty", path)
        return value

    def _event_time(self, event: dict[str, Any], now_ms: int) -> int:
        path = child("$", self.timestamp_field)
        if self.timestamp_field not in event:
            raise Failure("missing_field", "required field is missing (the source's timestamp)", path)
        value = event[self.timestamp_field]
        if value is None:
            raise Failure("bad_timestamp", "is null; the source's timestamp must be set", path)
        if not isinstance(value, str):
            raise Failure("bad_timestamp", f"expected a timestamp string, got {typed(value)}", path)
        try:
            time = parse_event_time(value)
        except ValueError as exc:
            raise Failure("bad_timestamp", f"{show(value)} {exc}", path) from None
        event[self.timestamp_field] = time
        time_ms = epoch_ms(time)
        if time_ms > now_ms + self._skew_ms:
            ahead = _about(time_ms - now_ms)
            raise Failure(
                "future_timestamp",
                f"{iso_ms(time_ms)} is {ahead} ahead of now ({iso_ms(now_ms)}); "
                f"at most {format_duration(self.max_future_skew)} is allowed",
                path,
            )
        return time_ms

    def _check_rules(self, event: dict[str, Any]) -> None:
        for rule, evaluate in self._precise_rules:
            columns = sorted(rule.columns)
            path = child("$", columns[0]) if len(columns) == 1 else None
            try:
                result = evaluate(event)
            except SqlEvalError as exc:
                raise Failure("rule_failed", f"rule {rule.text!r} cannot be evaluated: {exc}", path) from None
            if result is False:
                values = ", ".join(f"{c} = {_sql_value(event.get(c))}" for c in columns)
                raise Failure("rule_failed", f"rule {rule.text!r} is false ({values})", path)


def _about(ms: int) -> str:
    """``17d 6h``, ``5m 3s``, ``250ms``: a duration to two units, for messages."""
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size or parts:
            parts.append(f"{ms // size}{unit}")
            ms %= size
        if len(parts) == 2:
            break
    return " ".join(p for p in parts if not p.startswith("0")) or f"{ms}ms"


def _sql_value(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return iso_ms(epoch_ms(value))
    return show(value)


def _encode(event: dict[str, Any]) -> bytes:
    try:
        return msgspec.json.encode(event)
    except UnicodeEncodeError:
        raise Failure("not_utf8", "a field name or value holds a lone surrogate") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise Failure("out_of_range", f"the event cannot be written back as JSON ({exc})") from None


__all__ = ["Invalid", "Outcome", "Valid", "Validator"]
