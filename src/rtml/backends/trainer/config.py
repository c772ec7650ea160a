"""Typed configs of the trainer backends (``trainer`` in ``rtml.yaml``; no imports of Ray or
XGBoost here). See docs/training.md."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalTrainerConfig(_Strict):
    """XGBoost + Optuna in this process (the embedded default)."""

    type: Literal["local"] = "local"
    # XGBoost threads per fit; None: one per 20,000 training rows, up to all cores (small
    # fits run faster on one thread than on several).
    n_jobs: int | None = Field(default=None, ge=1)


class RayTrainerConfig(_Strict):
    """Ray Tune (OptunaSearch + ASHA) over Ray Train's XGBoost trainer. ``address`` None
    starts a local Ray in this process; ``"auto"`` or ``"ray://host:10001"`` joins a cluster."""

    type: Literal["ray"] = "ray"
    address: str | None = None
    # Ray Train workers per trial and CPUs each.
    num_workers: int = Field(default=1, ge=1)
    cpus_per_worker: int = Field(default=1, ge=1)
    # Trials running at once (None: as many as the cluster's CPUs allow).
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    # ASHA: a trial is stopped early after this many boosting rounds if it is in the worse half.
    grace_period: int = Field(default=20, ge=1)
    reduction_factor: int = Field(default=2, ge=2)
    # Where Ray keeps trial results; None: a temporary directory (deleted after tuning,
    # kept when tuning fails).
    storage_path: str | None = None


TrainerConfig = Annotated[LocalTrainerConfig | RayTrainerConfig, Field(discriminator="type")]
