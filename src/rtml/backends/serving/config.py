"""Typed configs of the serving backends (``serving`` in ``rtml.yaml``). See docs/serving.md."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UvicornServingConfig(_Strict):
    """The ASGI app under uvicorn in this process (the embedded default)."""

    type: Literal["uvicorn"] = "uvicorn"


class RayServeConfig(_Strict):
    """The same predictor as a Ray Serve deployment. ``address`` None starts a local Ray."""

    type: Literal["ray_serve"] = "ray_serve"
    address: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8001, ge=0, le=65535)
    num_replicas: int = Field(default=1, ge=1)
    min_replicas: int | None = Field(default=None, ge=1)
    max_replicas: int | None = Field(default=None, ge=1)
    target_ongoing_requests: float = Field(default=8, gt=0)
    max_ongoing_requests: int = Field(default=32, ge=1)


ServingConfig = Annotated[UvicornServingConfig | RayServeConfig, Field(discriminator="type")]
