"""Request bodies of the registry's REST API (Confluent's field names)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rtml.services.registry import errors

T = TypeVar("T", bound=BaseModel)


class _Body(BaseModel):
    # Clients send "Confluent-Accept-Unknown-Properties: true": unknown fields are ignored.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SchemaRequest(_Body):
    """``POST /subjects/{s}/versions``, ``POST /subjects/{s}``, ``POST /compatibility/...``."""

    schema_text: str = Field(alias="schema")
    schema_type: str = Field(default="AVRO", alias="schemaType")
    references: list[Any] | None = None
    metadata: Any = None
    rule_set: Any = Field(default=None, alias="ruleSet")
    id: int | None = None
    version: int | None = None

    def check_supported(self) -> None:
        """Refuse, clearly, what rtml's registry does not implement."""
        if self.references:
            raise errors.InvalidSchema(
                "Schema references are not supported by rtml's registry. Fix: inline the "
                "referenced types in the schema, or use an external Confluent/Karapace registry"
            )
        if self.metadata or self.rule_set:
            raise errors.InvalidSchema(
                "Schema metadata and rule sets (data contracts) are not supported by rtml's registry"
            )
        if self.id is not None or self.version is not None:
            raise errors.OperationNotPermitted(
                "Registering with an explicit id or version needs IMPORT mode, which rtml's "
                "registry does not support"
            )


class ConfigRequest(_Body):
    """``PUT /config`` and ``PUT /config/{s}``."""

    compatibility: Any = None
    compatibility_level: Any = Field(default=None, alias="compatibilityLevel")

    @property
    def level(self) -> Any:
        return self.compatibility if self.compatibility is not None else self.compatibility_level


def parse_body(model: type[T], body: Any, error: type[errors.RegistryError]) -> T:
    """Validate a JSON body; problems become ``error`` naming the fields."""
    if not isinstance(body, dict):
        raise error("The request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise error(f"Invalid request body: {problems}") from None
