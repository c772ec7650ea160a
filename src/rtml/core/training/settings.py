"""``training`` in ``rtml.yaml``: how ``rtml train`` splits, tunes and promotes. See docs/training.md."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PromotionSettings(BaseModel):
    """A new version becomes ``champion`` only if its test metric beats the champion's on
    the same test window by at least ``margin`` (absolute; for log loss: lower by it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    margin: float = Field(default=0.0, ge=0)
    # The MLflow alias serving follows.
    alias: str = Field(default="champion", pattern=r"^[a-z][a-z0-9_\-]*$")


class TrainingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Optuna trials per `rtml train` (overridden by --trials).
    trials: int = Field(default=20, ge=1)
    seed: int = 0
    # Shares of the prediction points, by time, for validation and test (train gets the rest).
    validation_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    early_stopping_rounds: int = Field(default=30, ge=1)
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
