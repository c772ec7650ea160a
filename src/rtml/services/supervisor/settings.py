"""``up`` in rtml.yaml: what ``rtml up`` runs and how it supervises it (:class:`UpSettings`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rtml.timeutil import parse_duration

Component = Literal["validator", "engine", "indexer", "server", "monitor"]
# Start order; ``rtml up`` stops them in the reverse order.
ALL_COMPONENTS: tuple[Component, ...] = ("validator", "engine", "indexer", "server", "monitor")


class UpSettings(BaseModel):
    """``up``: the long-running system of ``rtml up``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Which components run (None: all of them; the indexer only with a Kafka dead-letter
    # topic that has an index). Always started in the order of ALL_COMPONENTS.
    components: list[Component] | None = None
    # How often the monitor labels the prediction log and recomputes online AUC and PSI,
    # and how far back it looks (by the time of the prediction).
    monitor_interval: str = "1m"
    monitor_window: str = "24h"
    # Serve the monitor's Prometheus gauges on 127.0.0.1:PORT (None: not served).
    monitor_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Retrain every model this often ("6h"; None: never). The promotion policy decides
    # whether a new version becomes champion; the server follows the alias by itself.
    retrain_every: str | None = None
    # Also train once when `rtml up` starts if no model has a champion yet.
    train_if_no_champion: bool = False
    # Trials per scheduled training (None: training.trials).
    retrain_trials: int | None = Field(default=None, ge=1)
    # A crashed component is restarted after restart_backoff, doubled on each crash within
    # crash_loop_window, at most restart_backoff_max; more than crash_loop_restarts crashes
    # within crash_loop_window and it is given up (the others keep running).
    restart_backoff: str = "1s"
    restart_backoff_max: str = "1m"
    crash_loop_restarts: int = Field(default=5, ge=1)
    crash_loop_window: str = "5m"
    # On Ctrl-C / SIGTERM each component gets this long to stop (in reverse start order)
    # before it is killed.
    grace_period: str = "20s"

    @field_validator(
        "monitor_interval",
        "monitor_window",
        "retrain_every",
        "restart_backoff",
        "restart_backoff_max",
        "crash_loop_window",
        "grace_period",
    )
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)  # raises a clear error on a bad duration
        return value

    def seconds(self, name: str) -> float:
        """The duration setting ``name`` in seconds (``retrain_every`` None: infinity)."""
        value = getattr(self, name)
        if value is None:
            return float("inf")
        return parse_duration(value).total_seconds()
