"""The demo's ``monitor`` stage: the live phase's predictions against what happened after.

Reads the prediction log (the live phase's rows), labels each prediction from the offline
store's events after its horizon, and fills ``monitoring.{online_auc,max_psi,alerts}``:
the online AUC against the test AUC, the PSI of each served feature against the training
split, and the alerts of :class:`~rtml.core.monitoring.AlertRules` (printed). Also printed:
training/serving skew (served features against the offline point-in-time values of the same
cart) and the planted-probability (oracle) AUC of the same carts.
"""

from __future__ import annotations

import numpy as np
from rich.table import Table

from rtml.core.monitoring import AlertRules, online_auc
from rtml.demo.runner import DemoContext


def monitor_stage(ctx: DemoContext) -> None:
    from rtml.monitoring import label_predictions, monitor, read_predictions

    live = ctx.artifacts.get("live")
    outcome = ctx.artifacts.get("train_outcome")
    if live is None or outcome is None:
        ctx.console.print("no live phase (--live-seconds 0): nothing to monitor")
        return
    project = ctx.require_project()
    model = outcome.report.model
    predictions = read_predictions(project, model, since_ms=live.start_ms)
    labelled = label_predictions(project, model, predictions)
    test_auc = outcome.report.test_metrics["roc_auc"]
    rules = AlertRules()
    report = monitor(
        labelled,
        stats=outcome.report.feature_stats,
        reference_auc=test_auc,
        requests=live.tally.requests,
        errors=live.tally.errors,
        rules=rules,
    )
    ctx.artifacts["labelled"] = labelled
    ctx.artifacts["monitoring"] = report
    m = ctx.summary.monitoring
    m.online_auc = None if report.online_auc is None else round(report.online_auc, 4)
    m.max_psi = None if report.max_psi is None else round(report.max_psi, 4)
    m.alerts = len(report.alerts)

    known = labelled.labelled
    oracle, agree = _against_truth(ctx, labelled.request_ids, labelled.labels, known)
    ctx.summary.skew.rows = report.skew.rows
    ctx.summary.skew.rows_differing = report.skew.rows_differing
    ctx.summary.skew.online_oracle_auc = None if oracle is None else round(oracle, 4)
    table = Table(title=f"monitoring {model} (live phase)", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("predictions logged / requests", f"{report.predictions:,} / {live.tally.requests:,}")
    table.add_row("labelled (horizon passed), positives", f"{report.labelled:,}, {report.positives:,}")
    table.add_row("online AUC", _fmt(report.online_auc))
    table.add_row("test AUC (training)", _fmt(test_auc))
    if report.online_auc is not None:
        table.add_row("online - test", f"{report.online_auc - test_auc:+.4f}")
    if oracle is not None:
        table.add_row("oracle AUC of the same carts (planted probabilities)", _fmt(oracle))
    if agree is not None:
        table.add_row("labels equal to the generator's truth", f"{agree[0]:,} of {agree[1]:,}")
    skew = report.skew
    table.add_row(
        "labelled rows served with features != offline point-in-time",
        f"{skew.rows_differing:,} of {skew.rows:,}",
    )
    top = sorted(report.psi.items(), key=lambda kv: -kv[1])[:3]
    table.add_row("largest PSI", ", ".join(f"{name} {value:.3f}" for name, value in top) or "-")
    ctx.console.print(table)
    if skew.by_feature:
        worst = sorted(skew.by_feature.items(), key=lambda kv: -kv[1])[:5]
        ctx.console.print("skew by feature: " + ", ".join(f"{k} {v}" for k, v in worst))
    if report.alerts:
        ctx.console.print(f"[bold yellow]{len(report.alerts)} alert(s):")
        for alert in report.alerts:
            ctx.console.print(f"  [yellow]{alert.rule}[/]: {alert.message}")
    else:
        ctx.console.print(
            f"no alert (PSI <= {rules.max_psi:g} per feature, online AUC within {rules.max_auc_drop:g} "
            f"of the test AUC, error rate <= {rules.max_error_rate:.0%})"
        )


def _against_truth(
    ctx: DemoContext, request_ids: list[str], labels: np.ndarray, known: np.ndarray
) -> tuple[float | None, tuple[int, int] | None]:
    """The oracle AUC of the labelled carts and how many stored labels equal the generator's
    (the demo's clients name each request by its cart's event id)."""
    generation = ctx.artifacts.get("generation")
    if generation is None:
        return None, None
    truth = {row.event_id: row for row in generation.truth}
    rows = [
        (truth[rid], y) for rid, y, k in zip(request_ids, labels, known, strict=True) if k and rid in truth
    ]
    if not rows:
        return None, None
    oracle = online_auc([r.probability for r, _ in rows], [r.label for r, _ in rows])
    agree = sum(1 for r, y in rows if bool(r.label) == bool(y))
    return oracle, (agree, len(rows))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
