"""The monitor of ``rtml up``: every ``up.monitor_interval``, for each model, the prediction
log of the last ``up.monitor_window`` labelled from the offline store once the label's
horizon has passed, then the online AUC, the PSI of each served feature against the
champion's training statistics, and the alerts -- all of it :mod:`rtml.monitoring`'s.

The results go to ``<data_dir>/up/monitor.json`` (the ``/ui`` page reads it), to Prometheus
gauges (served on ``up.monitor_metrics_port`` when set) and, for alerts, to JSON log lines.
Run as ``python -m rtml.services.supervisor.monitor --project DIR`` (``rtml up`` does).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from rtml.core.training.report import ROC_AUC, FeatureStats
from rtml.project import Project
from rtml.services.logging import log_event, service_logger
from rtml.services.supervisor.settings import UpSettings
from rtml.timeutil import utc_now

LOGGER = "rtml.monitor"
RESULT_FILE = "monitor.json"
STATS_FILE = "feature_stats.json"


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.online_auc = Gauge(
            "rtml_monitor_online_auc", "Online ROC-AUC of the labelled predictions", ["model"], registry=r
        )
        self.reference_auc = Gauge(
            "rtml_monitor_reference_auc", "Test ROC-AUC of the champion", ["model"], registry=r
        )
        self.psi = Gauge(
            "rtml_monitor_psi", "PSI of a served feature vs training", ["model", "feature"], registry=r
        )
        self.max_psi = Gauge(
            "rtml_monitor_max_psi", "Largest PSI over the model's features", ["model"], registry=r
        )
        self.predictions = Gauge(
            "rtml_monitor_predictions", "Logged predictions in the window", ["model"], registry=r
        )
        self.labelled = Gauge("rtml_monitor_labelled", "Of which the label is known", ["model"], registry=r)
        self.alerts = Gauge("rtml_monitor_alerts", "Alerts firing in the last check", ["model"], registry=r)
        self.last_run = Gauge("rtml_monitor_last_run_timestamp_seconds", "End of the last check", registry=r)


class Monitor:
    """One check per model per :meth:`run_once`; :meth:`run` loops until ``stop``."""

    def __init__(
        self,
        project: Project,
        settings: UpSettings,
        *,
        metrics: MonitorMetrics | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.project = project
        self.settings = settings
        self.metrics = metrics or MonitorMetrics()
        self.logger = logger or service_logger(LOGGER)
        self.result_path = project.root / project.data_dir / "up" / RESULT_FILE

    def run(self, stop: threading.Event) -> None:
        interval = self.settings.seconds("monitor_interval")
        while not stop.is_set():
            self.run_once()
            stop.wait(interval)

    def run_once(self) -> dict[str, Any]:
        from rtml.services.supervisor.supervisor import write_json

        results = {name: self.check(name) for name in sorted(self.project.definitions.models)}
        out = {"updated_at": utc_now().isoformat(), "window": self.settings.monitor_window, "models": results}
        write_json(self.result_path, out)
        self.metrics.last_run.set(time.time())
        return out

    def check(self, model: str) -> dict[str, Any]:
        """The monitoring numbers of ``model`` (``error`` set when they could not be computed)."""
        from rtml.monitoring import label_predictions, monitor, read_predictions

        started = time.monotonic()
        since_ms = int((time.time() - self.settings.seconds("monitor_window")) * 1000)
        try:
            predictions = read_predictions(self.project, model, since_ms=since_ms)
            version, reference, stats = self._champion(model)
            result: dict[str, Any] = {"champion": version, "reference_auc": reference}
            self.metrics.predictions.labels(model).set(predictions.num_rows)
            if predictions.num_rows == 0:
                return {**result, "predictions": 0, "labelled": 0, "alerts": []}
            labelled = label_predictions(self.project, model, predictions)
            report = monitor(
                labelled,
                stats=stats,
                reference_auc=reference,
                requests=predictions.num_rows,
                errors=0,  # the server's error rate is on its own /metrics
            )
        except Exception as exc:  # a bad check must not end the monitor
            log_event(self.logger, "monitor_failed", level=logging.ERROR, model=model, error=str(exc))
            return {"error": f"{type(exc).__name__}: {exc}"}
        m = self.metrics
        m.labelled.labels(model).set(report.labelled)
        m.online_auc.labels(model).set(_nan(report.online_auc))
        m.reference_auc.labels(model).set(_nan(reference))
        m.max_psi.labels(model).set(_nan(report.max_psi))
        for feature, value in report.psi.items():
            m.psi.labels(model, feature).set(value)
        m.alerts.labels(model).set(len(report.alerts))
        for alert in report.alerts:
            log_event(
                self.logger,
                "alert",
                level=logging.WARNING,
                model=model,
                rule=alert.rule,
                message=alert.message,
            )
        result.update(
            predictions=report.predictions,
            labelled=report.labelled,
            positives=report.positives,
            online_auc=report.online_auc,
            max_psi=report.max_psi,
            psi=report.psi,
            skew_rows=report.skew.rows_differing,
            alerts=[{"rule": a.rule, "message": a.message} for a in report.alerts],
            seconds=round(time.monotonic() - started, 3),
        )
        log_event(self.logger, "monitored", model=model, **{k: v for k, v in result.items() if k != "psi"})
        return result

    def _champion(self, model: str) -> tuple[str | None, float | None, list[FeatureStats]]:
        """The champion's version, its test AUC and its training split's feature statistics."""
        from rtml.backends.tracking import open_registry

        alias = self.project.config.training.promotion.alias
        registry = open_registry(self.project)
        try:
            version = registry.alias_version(model, alias)
            if version is None:
                return None, None, []
            found = [v for v in registry.versions(model) if v.version == version]
            reference = found[0].metrics.get(ROC_AUC) if found else None
            stats = _feature_stats(registry, found[0].run_id) if found else []
            return version, reference, stats
        finally:
            registry.close()


def _feature_stats(registry: Any, run_id: str) -> list[FeatureStats]:
    """The run's ``feature_stats.json`` (MLflow: from the run's artifacts); [] when the
    registry cannot give it (PSI is then not computed)."""
    client = getattr(registry, "_client", None)
    if client is None or not hasattr(client, "download_artifacts"):
        return []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(client.download_artifacts(run_id, STATS_FILE, tmp))
        return [FeatureStats(**item) for item in json.loads(path.read_text())]


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def main(argv: list[str] | None = None) -> int:
    from rtml.services.supervisor.supervisor import up_settings

    parser = argparse.ArgumentParser(description="The monitor loop of `rtml up`.")
    parser.add_argument("--project", required=True)
    args = parser.parse_args(argv)
    project = Project.load(Path(args.project))
    settings = up_settings(project)
    monitor = Monitor(project, settings)
    if settings.monitor_metrics_port is not None:
        start_http_server(settings.monitor_metrics_port, addr="127.0.0.1", registry=monitor.metrics.registry)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _s, _f: stop.set())
    log_event(
        monitor.logger, "monitor_started", interval=settings.monitor_interval, window=settings.monitor_window
    )
    monitor.run(stop)
    log_event(monitor.logger, "monitor_stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
