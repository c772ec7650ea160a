"""The PNG plots logged with each training run: feature importance, ROC, precision-recall and
calibration, drawn from a :class:`~rtml.core.training.report.TrainingReport`.

matplotlib's object API on the Agg canvas: no pyplot, no global figure state, no display.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rtml.core.training.report import Curve, TrainingReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# How many features the importance chart shows (the most important ones).
TOP_FEATURES = 30
PLOT_FILES = ("feature_importance.png", "roc.png", "pr.png", "calibration.png")


def write_plots(report: TrainingReport, directory: Path) -> list[Path]:
    """Write the four PNGs of ``report`` into ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    figures = {
        "feature_importance.png": feature_importance(report.feature_importance),
        "roc.png": roc(report.roc, report.test_metrics.get("roc_auc")),
        "pr.png": precision_recall(report.pr, report.test_metrics.get("pr_auc"), _base_rate(report)),
        "calibration.png": calibration(report.calibration, report.test_metrics.get("calibration_error")),
    }
    paths = []
    for name, figure in figures.items():
        path = directory / name
        figure.savefig(path, format="png", dpi=100)
        paths.append(path)
    return paths


def _figure(width: float = 6.0, height: float = 4.5, *, tight: bool = False) -> Figure:
    """A figure on its own Agg canvas. Fixed margins unless ``tight`` (which lays out twice:
    only for labels of unknown width, the feature names)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="tight" if tight else None)
    if not tight:
        figure.subplots_adjust(left=0.12, right=0.88, bottom=0.12, top=0.92)
    FigureCanvasAgg(figure)
    return figure


def _score(label: str, value: float | None) -> str:
    return f"{label} = {value:.4f}" if value is not None else label


def _base_rate(report: TrainingReport) -> float | None:
    return report.test.positives / report.test.rows if report.test.rows else None


def feature_importance(importance: dict[str, float]) -> Figure:
    ranked = sorted(importance.items(), key=lambda item: item[1], reverse=True)[:TOP_FEATURES]
    ranked.reverse()  # barh draws bottom-up: the most important on top
    figure = _figure(7.0, max(2.5, 0.28 * len(ranked) + 1.2), tight=True)
    axes = figure.add_subplot()
    if ranked:
        axes.barh([name for name, _ in ranked], [value for _, value in ranked], color="#4C72B0")
    else:
        axes.text(0.5, 0.5, "no feature was used", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("gain")
    axes.set_title(f"feature importance (top {min(TOP_FEATURES, len(importance))} of {len(importance)})")
    axes.tick_params(axis="y", labelsize=8)
    return figure


def roc(curve: Curve, auc: float | None) -> Figure:
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot(curve.x, curve.y, color="#4C72B0", label=_score("ROC AUC", auc))
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="random")
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate")
    axes.set_title("ROC curve (test split)")
    axes.legend(loc="lower right")
    return figure


def precision_recall(curve: Curve, auc: float | None, base_rate: float | None) -> Figure:
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot(curve.x, curve.y, color="#55A868", label=_score("PR AUC", auc))
    if base_rate is not None:
        axes.axhline(base_rate, color="grey", linestyle="--", linewidth=1, label=f"base rate {base_rate:.3f}")
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall", ylabel="precision")
    axes.set_title("precision-recall curve (test split)")
    axes.legend(loc="lower left")
    return figure


def calibration(curve: Curve, error: float | None) -> Figure:
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    axes.plot(curve.x, curve.y, marker="o", color="#C44E52", label=_score("calibration error", error))
    if curve.counts:
        twin = axes.twinx()
        width = 1.0 / max(len(curve.counts), 1)
        twin.bar(curve.x, curve.counts, width=width * 0.8, alpha=0.15, color="grey")
        twin.set_ylabel("rows per bin")
        axes.set_zorder(twin.get_zorder() + 1)  # the curve and legend over the bars
        axes.patch.set_visible(False)
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="mean predicted probability", ylabel="observed rate")
    axes.set_title("calibration (test split)")
    axes.legend(loc="upper left")
    return figure
