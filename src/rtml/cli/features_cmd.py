"""``rtml features get``: read a key's features from the online store.

rtml features get --view user_activity --key user_id=42 [--at 2019-10-15T12:00:00Z] [--json]
rtml features get --model purchase_1h --key user_id=42 --key product_id=7 --key price=12.5
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from rtml.cli.common import ProjectOption, console, open_project
from rtml.errors import InvalidInputError
from rtml.features import MISSING, OnlineFeatures, at_iso, at_millis
from rtml.timeutil import from_millis


def features_group(app: typer.Typer) -> typer.Typer:
    """The ``rtml features`` group of ``app``, made on first use (other commands add theirs)."""
    for info in app.registered_groups:
        if info.name == "features" and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(help="Read and manage features.", no_args_is_help=True)
    app.add_typer(group, name="features")
    return group


def parse_keys(pairs: list[str]) -> dict[str, str]:
    """``["user_id=42", "product_id=7"]`` -> ``{"user_id": "42", "product_id": "7"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInputError(f"--key {pair!r} is not NAME=VALUE. Fix: e.g. --key user_id=42")
        out[name.strip()] = value
    return out


def register(app: typer.Typer) -> None:
    @features_group(app).command("get")
    def get(
        view: list[str] = typer.Option([], "--view", help="Feature view to read (repeat for several)."),
        model: str | None = typer.Option(
            None, "--model", help="Read a model's features instead (on-demand ones included)."
        ),
        key: list[str] = typer.Option(
            [], "--key", "-k", help="A join key (or a model's request field) as NAME=VALUE; repeat."
        ),
        at: str | None = typer.Option(
            None, "--at", help="ISO-8601 time with a zone, e.g. 2019-10-15T12:00:00Z (default: now)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
        project_dir: Path = ProjectOption,
    ) -> None:
        """Print the features of one entity from the online store, as of --at (events
        strictly before it count). A key the store does not hold reads as the defaults
        (counts and sums 0, others null), and says so."""
        if bool(view) == (model is not None):
            raise InvalidInputError("give --view (one or more) or --model. Fix: e.g. --view user_activity")
        project = open_project(project_dir)
        t_ms = at_millis(at)
        with OnlineFeatures(project) as reader:
            row = reader.get(model if model is not None else view, [parse_keys(key)], from_millis(t_ms))[0]
        missing: list[str] = row.pop(MISSING)
        if as_json:
            values = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
            typer.echo(json.dumps({"at": at_iso(t_ms), "rows": [{**values, MISSING: missing}]}, indent=2))
            return
        console.print(_table(row, at_iso(t_ms)))
        for name in missing:
            console.print(
                f"[yellow]{name}: the online store holds no state for this key; "
                "its features show the defaults (no events).[/]"
            )


def _table(row: dict[str, Any], at: str) -> Table:
    table = Table(title=f"Features as of {at}", title_justify="left")
    table.add_column("feature")
    table.add_column("value", justify="right")
    for name, value in row.items():
        table.add_row(name, "null" if value is None else _format(value))
    return table


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
