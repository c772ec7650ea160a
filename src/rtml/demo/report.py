"""The demo's HTML report: ``<demo dir>/report.html``, one file with its images inside.

Sections: the summary table and stage timings; the training plots (feature importance, ROC,
precision-recall, calibration: the same drawings MLflow stores with the run, re-drawn from
the training report); the served scores (histogram of the live phase's scores by label,
against the test split's); the PSI of each feature against the training split; the alerts.
Images are PNGs embedded as base64 ``data:`` URLs.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtml.core.monitoring import AlertRules
from rtml.demo.runner import DemoContext

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT_FILE = "report.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 10px; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 48%; margin: 4px; border: 1px solid #eee; }
.alert { color: #a33; }
"""


def report_stage(ctx: DemoContext) -> None:
    """Write ``<demo dir>/report.html``."""
    path = ctx.options.directory / REPORT_FILE
    write_report(ctx, path)
    ctx.artifacts["report"] = path
    ctx.console.print(f"report -> {path}")


def write_report(ctx: DemoContext, path: Path) -> None:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>rtml demo</title><style>{_STYLE}</style>"
    ]
    parts.append("</head><body><h1>rtml demo</h1>")
    parts.append("<h2>Summary</h2>" + _table([("key", "value")], ctx.summary.rows(), header=True))
    stages = [(name, f"{seconds:.1f} s") for name, seconds in ctx.summary.stages.items()]
    parts.append("<h3>Stage timings</h3>" + _table([("stage", "wall time")], stages, header=True))
    outcome = ctx.artifacts.get("train_outcome")
    if outcome is not None:
        parts.append("<h2>Training</h2>" + "".join(_img(f) for f in _training_figures(outcome.report)))
    labelled = ctx.artifacts.get("labelled")
    report = ctx.artifacts.get("monitoring")
    if labelled is not None and report is not None:
        parts.append("<h2>Live phase</h2>")
        live = ctx.artifacts.get("live")
        if live is not None:
            parts.append(f"<p>{html.escape(_live_text(live))}</p>")
        test_scores = outcome.test_scores if outcome is not None else None
        parts.append(_img(_score_histogram(labelled.scores, labelled.labels, test_scores)))
        parts.append(_img(_psi_bars(report.psi, AlertRules().max_psi)))
        parts.append("<h3>Alerts</h3>")
        if report.alerts:
            items = "".join(f"<li class='alert'>{html.escape(a.message)}</li>" for a in report.alerts)
            parts.append(f"<ul>{items}</ul>")
        else:
            parts.append("<p>none</p>")
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")


def _live_text(live: Any) -> str:
    p50, p99 = live.latency_ms
    return (
        f"{live.seconds:.0f} s of wall time, simulated clock x{live.speed:,.0f} "
        f"({(live.end_ms - live.start_ms) / 3_600_000:.1f} simulated hours): {live.sent:,} events sent, "
        f"{live.tally.requests:,} prediction requests, {live.tally.errors} errors, "
        f"latency p50 {p50 or 0:.1f} ms, p99 {p99 or 0:.1f} ms."
    )


def _table(head: Sequence[tuple[str, str]], rows: Sequence[tuple[str, str]], *, header: bool) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head[0]) + "</tr>")
    for key, value in rows:
        out.append(f"<tr><td>{html.escape(key)}</td><td class='n'>{html.escape(value)}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _img(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='plot' src='data:image/png;base64,{data}'>"


def _training_figures(report: Any) -> list[Figure]:
    from rtml.backends.tracking import plots

    base_rate = report.test.positives / report.test.rows if report.test.rows else None
    return [
        plots.feature_importance(report.feature_importance),
        plots.roc(report.roc, report.test_metrics.get("roc_auc")),
        plots.precision_recall(report.pr, report.test_metrics.get("pr_auc"), base_rate),
        plots.calibration(report.calibration, report.test_metrics.get("calibration_error")),
    ]


def _figure(width: float = 6.0, height: float = 4.5) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="tight")
    FigureCanvasAgg(figure)
    return figure


def _score_histogram(scores: np.ndarray, labels: np.ndarray, test_scores: np.ndarray | None) -> Figure:
    figure = _figure()
    axes = figure.add_subplot()
    bins = [i / 40 for i in range(41)]
    known = ~np.isnan(labels)
    series = [
        (scores[known & (labels == 1)], "served, label 1", "#55A868"),
        (scores[known & (labels == 0)], "served, label 0", "#C44E52"),
        (scores[~known], "served, horizon not passed", "#999999"),
    ]
    for values, name, color in series:
        if len(values):
            axes.hist(
                values, bins=bins, density=True, alpha=0.45, color=color, label=f"{name} ({len(values)})"
            )
    if test_scores is not None and len(test_scores):
        axes.hist(
            test_scores, bins=bins, density=True, histtype="step", color="#4C72B0", label="test split (all)"
        )
    axes.set(xlabel="score", ylabel="density")
    axes.set_title("served scores (live phase)")
    axes.legend(loc="upper right", fontsize=8)
    return figure


def _psi_bars(psi: dict[str, float], threshold: float) -> Figure:
    ranked = sorted(psi.items(), key=lambda kv: kv[1])
    figure = _figure(7.0, max(2.5, 0.28 * len(ranked) + 1.2))
    axes = figure.add_subplot()
    if ranked:
        colors = ["#C44E52" if v > threshold else "#4C72B0" for _, v in ranked]
        axes.barh([k for k, _ in ranked], [v for _, v in ranked], color=colors)
    axes.axvline(threshold, color="grey", linestyle="--", linewidth=1, label=f"alert above {threshold:g}")
    axes.set_xlabel("PSI: served values against the training split")
    axes.set_title("feature drift (PSI)")
    axes.tick_params(axis="y", labelsize=8)
    axes.legend(loc="lower right", fontsize=8)
    return figure
