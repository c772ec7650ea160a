"""What every definition shares: a checked name, where it was written, a fingerprint.

Definitions hold configuration only and do no I/O. Each is a frozen, keyword-only
dataclass validated on construction; a mistake raises :class:`DefinitionError` naming
the file and line where the object was written, the object, the field and the fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from rtml.errors import DefinitionError
from rtml.timeutil import format_duration, parse_duration

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def caller_origin() -> str:
    """``file:line`` of the first stack frame outside ``rtml.definitions``."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR) and "dataclasses" not in filename:
            if not filename.startswith("<"):
                return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Definition:
    """Base of Entity, Source, FeatureView, OnDemandFeature, Label and Model."""

    kind: ClassVar[str] = "definition"

    name: str
    description: str = ""
    origin: str = dataclasses.field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.origin:
            object.__setattr__(self, "origin", caller_origin())
        try:
            check_name(self.name, field="name", obj=f"{self.kind} {self.name!r}")
            self._validate()
        except DefinitionError as err:
            raise err.with_origin(self.origin) from None

    def _validate(self) -> None:
        """Subclasses check their own fields here and raise DefinitionError."""

    @property
    def title(self) -> str:
        """How messages name this object, e.g. ``FeatureView 'user_activity'``."""
        return f"{self.kind} {self.name!r}"

    def fail(self, field: str, message: str, fix: str) -> DefinitionError:
        return DefinitionError(message, obj=self.title, field=field, fix=fix, origin=self.origin)

    def spec(self) -> dict[str, Any]:
        """A JSON-able description of the definition (what its fingerprint hashes)."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            if f.name in {"origin", "description"}:
                continue
            out[f.name] = _jsonable(getattr(self, f.name))
        return out

    def fingerprint(self) -> str:
        """sha256 of the spec: changes exactly when the definition's meaning changes."""
        blob = json.dumps(self.spec(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Definition):
        return value.spec()  # a view's meaning includes its source's and entities'.
    if isinstance(value, timedelta):
        return format_duration(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def check_name(value: object, *, field: str, obj: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise DefinitionError(
            f"{value!r} is not a valid name",
            obj=obj,
            field=field,
            fix="use lower-case letters, digits and '_', starting with a letter (e.g. 'user_activity')",
        )
    return value


def as_tuple(value: Any) -> tuple[Any, ...]:
    """Accept a single item, a list or a tuple; keep a tuple (definitions are frozen)."""
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(value)
    return (value,)


def duration_field(owner: Definition | str, field: str, value: Any) -> timedelta:
    """Parse a duration field, turning a bad string into a DefinitionError."""
    try:
        parsed = parse_duration(value)
    except ValueError as exc:
        obj = owner.title if isinstance(owner, Definition) else owner
        raise DefinitionError(str(exc), obj=obj, field=field, fix="write e.g. '5m', '1h' or '7d'") from None
    if parsed <= timedelta(0):
        obj = owner.title if isinstance(owner, Definition) else owner
        raise DefinitionError(
            f"must be positive, got {value!r}", obj=obj, field=field, fix="give a duration > 0"
        )
    return parsed
