"""The one error hierarchy of rtml.

Every error knows the HTTP status a server should answer with, so the mapping from
error to response is made once (in the server), not at each raise site. Messages say
what was wrong and what to do about it.
"""

from __future__ import annotations


class RtmlError(Exception):
    """Root of every error rtml raises on purpose."""

    http_status: int = 500


class DefinitionError(RtmlError):
    """A user definition (entity, source, feature view, label, model) is invalid.

    The message names the file, the object, the field and the fix.
    """

    http_status = 400

    def __init__(
        self,
        message: str,
        *,
        obj: str | None = None,
        field: str | None = None,
        fix: str | None = None,
        origin: str | None = None,
    ) -> None:
        self.obj = obj
        self.field = field
        self.fix = fix
        self.origin = origin
        self.reason = message
        super().__init__(self._render())

    def with_origin(self, origin: str) -> DefinitionError:
        """Return the same error, located at ``origin`` (``file:line``) if it had none."""
        if self.origin:
            return self
        return DefinitionError(self.reason, obj=self.obj, field=self.field, fix=self.fix, origin=origin)

    def _render(self) -> str:
        where = f"{self.origin}: " if self.origin else ""
        what = ""
        if self.obj and self.field:
            what = f"{self.obj}.{self.field}: "
        elif self.obj:
            what = f"{self.obj}: "
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{where}{what}{self.reason}.{fix}".replace("..", ".")


class ConfigError(RtmlError):
    """``rtml.yaml`` or an ``RTML_*`` variable is invalid."""

    http_status = 500


class MissingExtraError(RtmlError):
    """A backend needs an optional dependency that is not installed."""

    http_status = 500

    def __init__(self, backend: str, extra: str, module: str) -> None:
        super().__init__(
            f"backend {backend!r} needs the Python package {module!r}, which is not installed. "
            f"Fix: pip install 'rtml[{extra}]'"
        )


class BackendUnavailableError(RtmlError):
    """A server a backend talks to cannot be reached (down, wrong address, timeout)."""

    http_status = 503


class InvalidInputError(RtmlError):
    """A request or an input file is malformed."""

    http_status = 400
