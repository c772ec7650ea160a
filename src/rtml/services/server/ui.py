"""``GET /ui``: one read-only HTML page about the system ``rtml up`` runs.

Server-rendered, no JavaScript: the components' state from the supervisor's status file
(``<data_dir>/up/status.json``), the events validated and applied since ``rtml up``
started, the engine's watermark (event-time freshness), the model versions served (the
champion alias followed by this server), the retraining schedule and the last monitor
results (``<data_dir>/up/monitor.json``). It refreshes itself every 5 seconds.
"""

from __future__ import annotations

import json
import time
from html import escape
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from rtml.project import Project

REFRESH_S = 5
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
    "margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
    "th{background:#f4f4f4}.ok{color:#080}.bad{color:#b00}.warn{color:#a60}"
)
_STATE_CLASS = {"running": "ok", "failed": "bad", "backoff": "warn", "stopping": "warn"}


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict | list):
        return escape(json.dumps(value, default=str))
    return escape(str(value))


def _table(headers: list[str], rows: list[list[Any]], raw: set[int] | None = None) -> str:
    raw = raw or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{v if i in raw else _cell(v)}</td>" for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _components(status: dict[str, Any] | None) -> str:
    if status is None:
        return "<p>No supervisor status file: this server was not started by <code>rtml up</code>.</p>"
    rows = []
    now_ms = time.time() * 1000
    for name, c in (status.get("components") or {}).items():
        state = str(c.get("state"))
        shown = f'<span class="{_STATE_CLASS.get(state, "")}">{escape(state)}</span>'
        counts = c.get("since_up") or {}
        watermark = (c.get("last_batch") or {}).get("watermark_ms")
        behind = f"{(now_ms - watermark) / 1000:,.1f} s" if isinstance(watermark, int | float) else None
        rows.append(
            [
                name,
                shown,
                c.get("pid"),
                c.get("restarts"),
                c.get("last_exit"),
                counts or None,
                behind,
                c.get("log"),
            ]
        )
    head = (
        f"<p>rtml up: <b>{_cell(status.get('state'))}</b>, pid {_cell(status.get('pid'))}, since "
        f"{_cell(status.get('started_at'))} (status of {_cell(status.get('updated_at'))})</p>"
    )
    headers = [
        "component",
        "state",
        "pid",
        "restarts",
        "last exit",
        "batches since up",
        "watermark age",
        "log",
    ]
    return head + _table(headers, rows, raw={1})


def _models(request: Request) -> str:
    scoring = getattr(request.app.state, "scoring", None)
    holder = getattr(scoring, "holder", None)
    if holder is None:
        return "<p>No models.</p>"
    rows = [
        [name, s.get("version"), s.get("alias"), s.get("alias_version"), s.get("error")]
        for name, s in holder.status().items()
    ]
    return _table(["model", "served version", "alias", "alias points at", "error"], rows)


def _monitor(result: dict[str, Any] | None) -> str:
    if result is None:
        return "<p>No monitor results yet.</p>"
    rows = []
    for name, r in (result.get("models") or {}).items():
        alerts = "; ".join(f"{a.get('rule')}: {a.get('message')}" for a in r.get("alerts") or []) or None
        rows.append(
            [
                name,
                r.get("champion"),
                r.get("predictions"),
                r.get("labelled"),
                r.get("online_auc"),
                r.get("reference_auc"),
                r.get("max_psi"),
                alerts or r.get("error"),
            ]
        )
    headers = ["model", "champion", "predictions", "labelled", "online AUC", "test AUC", "max PSI", "alerts"]
    when = f"<p>checked {_cell(result.get('updated_at'))}, window {_cell(result.get('window'))}</p>"
    return when + _table(headers, rows)


def _training(status: dict[str, Any] | None) -> str:
    training = (status or {}).get("training")
    if not training:
        return "<p>Retraining is off.</p>"
    keys = [
        "retrain_every",
        "running",
        "last_started_ms",
        "last_finished_ms",
        "last_exit",
        "next_due_ms",
        "log",
    ]
    return _table(["setting", "value"], [[k, training.get(k)] for k in keys])


def render(project: Project, request: Request) -> str:
    base = project.root / project.data_dir / "up"
    status = _read(base / "status.json")
    monitor = _read(base / "monitor.json")
    title = f"rtml: {escape(project.config.project)}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<meta http-equiv='refresh' content='{REFRESH_S}'><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1><h2>Components</h2>{_components(status)}"
        f"<h2>Models</h2>{_models(request)}<h2>Monitoring</h2>{_monitor(monitor)}"
        f"<h2>Retraining</h2>{_training(status)}</body></html>"
    )


def build_router(project: Project) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/ui", response_class=HTMLResponse, summary="Status page")
    def ui(request: Request) -> HTMLResponse:
        """A read-only HTML page: components, counts, freshness, models, monitoring."""
        return HTMLResponse(render(project, request))

    return router
