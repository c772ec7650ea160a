"""Registered models: list versions, promote one to ``champion``, roll back. See docs/model-registry.md.

The alias (``training.promotion.alias``, ``champion`` by default) is what serving follows.
It only moves when the candidate beats the champion on the same test window by the margin
(:mod:`rtml.core.training.policy`), or when forced; every move is recorded in the alias's
history (:mod:`rtml.backends.tracking.history`), which is what :func:`rollback` walks back.
On any failure the alias stays where it was.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rtml.backends.tracking import open_registry
from rtml.backends.tracking import tags as T
from rtml.backends.tracking.base import ModelRegistry, ModelVersion
from rtml.backends.tracking.history import Action, AliasChange, RegistryWithHistory, champion_stack
from rtml.core.training.policy import Decision, decide
from rtml.core.training.report import ROC_AUC
from rtml.core.training.settings import PromotionSettings
from rtml.errors import InvalidInputError
from rtml.services.logging import log_event

if TYPE_CHECKING:
    from rtml.project import Project

__all__ = [
    "PromotionDecision",
    "list_versions",
    "open_registry",
    "promote",
    "promote_if_better",
    "promote_version",
    "rollback",
    "rollback_alias",
]

_log = logging.getLogger("rtml.models")


@dataclass(frozen=True)
class PromotionDecision:
    model: str
    version: str  # the candidate (for a rollback: the version the alias went back to)
    alias: str
    promoted: bool  # the alias now points at ``version`` because of this call
    action: Literal["promote", "force", "rollback", "none"]
    reason: str
    previous: str | None  # where the alias pointed before
    metric: str
    candidate_value: float | None = None
    champion_value: float | None = None  # the champion's score on the candidate's test window

    @property
    def champion(self) -> str | None:
        """Where the alias points after the call."""
        return self.version if self.promoted else self.previous


# -- after training ---------------------------------------------------------------------------
def promote_if_better(
    registry: ModelRegistry,
    version: ModelVersion,
    candidate_value: float,
    champion_value: float | None,
    metric: str,
    settings: PromotionSettings,
    *,
    force: bool = False,
) -> PromotionDecision:
    """Make ``version`` the champion if its ``metric`` (``candidate_value``) beats the current
    champion's score on the same test rows (``champion_value``) by ``settings.margin``.

    ``champion_value`` None with a champion in place means the champion could not be scored
    on the candidate's test window: the candidate is not promoted (unless ``force``).
    """
    alias = settings.alias
    current = registry.alias_version(version.model, alias)
    if current == version.version:
        return PromotionDecision(
            version.model,
            version.version,
            alias,
            False,
            "none",
            f"v{current} is already {alias}",
            current,
            metric,
        )
    if current is not None and champion_value is None:
        verdict = Decision(
            False,
            f"the {alias} v{current} has no {metric} on this version's test window "
            "(it could not be scored on these rows)",
        )
    else:
        verdict = decide(
            candidate_value, champion_value if current is not None else None, metric, settings.margin
        )
    _tag(
        registry,
        version,
        {
            T.COMPARED_WITH: current or "",
            T.CHAMPION_SCORE: repr(float(champion_value)) if champion_value is not None and current else "",
            T.DECISION: verdict.reason,
        },
    )
    return _decide_and_move(
        registry,
        version.model,
        version.version,
        alias,
        current,
        verdict,
        force,
        metric,
        candidate_value,
        champion_value,
    )


# -- by hand ----------------------------------------------------------------------------------
def promote_version(
    registry: ModelRegistry, model: str, version: str, settings: PromotionSettings, *, force: bool = False
) -> PromotionDecision:
    """``rtml models promote``: the same policy, on the numbers the registry holds. The
    champion's score on the candidate's test window is the one training measured (when the
    candidate was compared with this same champion) or, when both were tested on the same
    window, the champion's own test metric; otherwise they are not comparable and only
    ``force`` promotes."""
    alias = settings.alias
    by_version = {v.version: v for v in registry.versions(model)}
    candidate = by_version.get(str(version))
    if candidate is None:
        raise InvalidInputError(
            f"model {model!r} has no version {version!r}. Fix: see `rtml models list --model {model}`"
        )
    current = registry.alias_version(model, alias)
    metric = candidate.tags.get(T.METRIC) or ROC_AUC
    value = candidate.metrics.get(metric)
    if current == candidate.version:
        reason = f"v{current} is already {alias}"
        return PromotionDecision(model, current, alias, False, "none", reason, current, metric, value)
    champion = by_version.get(current) if current is not None else None
    champion_value = _champion_score(candidate, champion, metric) if current is not None else None
    if value is None or not math.isfinite(value):
        verdict = Decision(False, f"v{candidate.version} has no test {metric} logged")
    elif current is not None and champion_value is None:
        verdict = Decision(
            False,
            f"v{candidate.version} and the {alias} v{current} were tested on different windows "
            f"({candidate.tags.get(T.TEST_WINDOW, '?')} vs "
            f"{champion.tags.get(T.TEST_WINDOW, '?') if champion else '?'}), so their {metric} "
            "are not comparable; retrain (training scores both on the same rows)",
        )
    else:
        verdict = decide(value, champion_value, metric, settings.margin)
    return _decide_and_move(
        registry, model, candidate.version, alias, current, verdict, force, metric, value, champion_value
    )


def _champion_score(candidate: ModelVersion, champion: ModelVersion | None, metric: str) -> float | None:
    """The champion's ``metric`` on the candidate's test rows, if the registry knows it: as
    training measured it when it compared the candidate with this champion, or the champion's
    own test metric when both were tested on the same window."""
    scored = candidate.tags.get(T.CHAMPION_SCORE, "")
    if champion is not None and candidate.tags.get(T.COMPARED_WITH) == champion.version and scored:
        return float(scored)
    if champion is not None and champion.tags.get(T.TEST_WINDOW) == candidate.tags.get(T.TEST_WINDOW):
        return champion.metrics.get(metric)
    return None


def rollback_alias(registry: ModelRegistry, model: str, alias: str = "champion") -> PromotionDecision:
    """Move ``alias`` back to the version that held it before the current one (recorded)."""
    history_registry = _history_registry(registry)
    current = registry.alias_version(model, alias)
    if current is None:
        raise InvalidInputError(
            f"model {model!r} has no {alias}: nothing to roll back. Fix: `rtml models list --model {model}`"
        )
    if history_registry is None:
        raise InvalidInputError(f"this registry keeps no alias history: cannot roll back {model!r}")
    stack = champion_stack(history_registry.alias_history(model, alias))
    if not stack or stack[-1] != current:
        raise InvalidInputError(
            f"the {alias} of {model!r} is v{current} but rtml's history of it ends at "
            f"{'v' + stack[-1] if stack else 'nothing'} (it was moved outside rtml). "
            f"Fix: move it with `rtml models promote --model {model} --version V --force`"
        )
    if len(stack) < 2:
        raise InvalidInputError(
            f"v{current} is the first {alias} of {model!r}: there is no earlier one to roll back to"
        )
    target = stack[-2]
    reason = f"rolled back from v{current} to v{target}"
    _move(registry, model, alias, target, current, "rollback", reason)
    return PromotionDecision(model, target, alias, True, "rollback", reason, current, "")


# -- on a project (the CLI) -------------------------------------------------------------------
def list_versions(project: Project, model: str) -> list[ModelVersion]:
    registry = open_registry(project)
    try:
        return registry.versions(model)
    finally:
        registry.close()


def promote(project: Project, model: str, version: str, force: bool = False) -> PromotionDecision:
    registry = open_registry(project)
    try:
        return promote_version(registry, model, version, project.config.training.promotion, force=force)
    finally:
        registry.close()


def rollback(project: Project, model: str) -> PromotionDecision:
    registry = open_registry(project)
    try:
        return rollback_alias(registry, model, project.config.training.promotion.alias)
    finally:
        registry.close()


# -- moving the alias -------------------------------------------------------------------------
def _decide_and_move(
    registry: ModelRegistry,
    model: str,
    version: str,
    alias: str,
    current: str | None,
    verdict: Decision,
    force: bool,
    metric: str,
    candidate_value: float | None,
    champion_value: float | None,
) -> PromotionDecision:
    if not verdict.promote and not force:
        log_event(_log, "promotion_refused", model=model, version=version, alias=alias, reason=verdict.reason)
        return PromotionDecision(
            model,
            version,
            alias,
            False,
            "none",
            verdict.reason,
            current,
            metric,
            candidate_value,
            champion_value,
        )
    action: Action = "promote" if verdict.promote else "force"
    reason = verdict.reason if verdict.promote else f"forced: {verdict.reason}"
    _move(registry, model, alias, version, current, action, reason)
    return PromotionDecision(
        model, version, alias, True, action, reason, current, metric, candidate_value, champion_value
    )


def _move(
    registry: ModelRegistry,
    model: str,
    alias: str,
    version: str,
    previous: str | None,
    action: Action,
    reason: str,
) -> None:
    """Point ``alias`` at ``version`` and record it; if the record fails, point it back."""
    registry.set_alias(model, alias, version)
    history_registry = _history_registry(registry)
    if history_registry is not None:
        change = AliasChange(model, alias, version, previous, action, reason, time.time_ns() // 1_000_000)
        try:
            history_registry.record_alias_change(change)
        except BaseException:
            if previous is not None:
                registry.set_alias(model, alias, previous)
            raise
    log_event(
        _log, "alias_moved", model=model, alias=alias, version=version, previous=previous, action=action
    )


def _history_registry(registry: ModelRegistry) -> RegistryWithHistory | None:
    has = all(hasattr(registry, m) for m in ("record_alias_change", "alias_history", "set_version_tags"))
    return registry if has else None  # type: ignore[return-value]


def _tag(registry: ModelRegistry, version: ModelVersion, tags: dict[str, str]) -> None:
    history_registry = _history_registry(registry)
    if history_registry is not None:
        history_registry.set_version_tags(version.model, version.version, tags)
