"""The demo's ``train`` stage: tune, register and promote the example's model, and hold its
test AUC against the oracle AUC of the generator's planted probabilities on the same rows."""

from __future__ import annotations

import numpy as np
from rich.table import Table

from rtml.core.training.metrics import roc_auc
from rtml.demo.runner import DemoContext
from rtml.progress import progress_bar


def train_stage(ctx: DemoContext) -> None:
    """Fill training.{rows,test_auc,oracle_auc,no_stream_features_auc,model_version,trials}."""
    from rtml.training import train

    project = ctx.require_project()
    models = sorted(project.definitions.models)
    model_name = models[0]
    trials = ctx.options.trials
    with progress_bar(ctx.console) as progress:
        task = progress.add_task(f"tuning {model_name}", total=trials)
        outcome = train(
            project,
            model_name,
            trials=trials,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    report = outcome.report
    oracle = _oracle_auc(ctx, outcome.test_event_ids, outcome.test_labels)
    training = ctx.summary.training
    training.rows = report.lineage.rows
    training.test_auc = round(report.test_metrics["roc_auc"], 4)
    training.oracle_auc = None if oracle is None else round(oracle, 4)
    training.no_stream_features_auc = round(outcome.baseline_auc, 4)
    training.model_version = outcome.version.version if outcome.version is not None else None
    training.trials = len(report.trials)
    ctx.artifacts["train_outcome"] = outcome

    table = Table(title=f"model {model_name}", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row(
        "training rows (train / validation / test)",
        f"{report.train.rows:,} / {report.validation.rows:,} / {report.test.rows:,}",
    )
    table.add_row("test ROC-AUC", f"{report.test_metrics['roc_auc']:.4f}")
    if oracle is not None:
        table.add_row("oracle AUC (planted probabilities, same rows)", f"{oracle:.4f}")
        table.add_row("model / oracle", f"{report.test_metrics['roc_auc'] / oracle:.1%}")
    table.add_row("AUC without the streaming features", f"{outcome.baseline_auc:.4f}")
    table.add_row(
        "test PR-AUC, log loss", f"{report.test_metrics['pr_auc']:.4f}, {report.test_metrics['log_loss']:.4f}"
    )
    decision = outcome.decision
    if outcome.version is not None:
        verdict = "champion" if decision is not None and decision.promoted else "not promoted"
        reason = f" ({decision.reason})" if decision is not None else ""
        table.add_row("registered", f"version {outcome.version.version}: {verdict}{reason}")
    ctx.console.print(table)


def _oracle_auc(ctx: DemoContext, event_ids: list[str], labels: np.ndarray) -> float | None:
    """ROC-AUC of the planted probabilities on the test rows (the best any model can do)."""
    generation = ctx.artifacts.get("generation")
    if generation is None:
        return None
    truth = {row.event_id: row.probability for row in generation.truth}
    keep = [i for i, event_id in enumerate(event_ids) if event_id in truth]
    if not keep:
        return None
    probabilities = np.array([truth[event_ids[i]] for i in keep])
    return roc_auc(np.asarray(labels)[keep], probabilities)
