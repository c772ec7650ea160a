"""Golden files: the training-set SQL of the example model, per dialect, compared exactly.

A change to the generated SQL shows up as a diff of ``tests/golden/pit/<dialect>/*.sql``
in review. After an intended change, regenerate them and read the diff::

    RTML_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/core/pit/test_golden_sql.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlglot

from rtml.core.pit import EventTable, SpineSource, plan_training_set, render_training_set
from rtml.definitions.loader import load_definitions
from rtml.project import EXAMPLE_DIR

GOLDEN = Path(__file__).resolve().parents[3] / "golden" / "pit"
UPDATE = os.environ.get("RTML_UPDATE_GOLDEN") == "1"
# The table names each backend renders with its default settings.
TABLES = {"duckdb": "events_events", "postgres": "rtml_offline.events_events"}
CASES = {
    "purchase_1h": SpineSource(),
    "purchase_1h.spine": SpineSource(kind="table", request_columns=("price",)),
}


def _render(dialect: str, spine: SpineSource) -> str:
    defs = load_definitions(EXAMPLE_DIR)
    table = EventTable.of(defs.sources["events"], defs.schemas["events"])
    plan = plan_training_set(defs.model("purchase_1h"), {"events": table})
    return render_training_set(plan, dialect, tables={"events": TABLES[dialect]}, spine=spine) + "\n"


@pytest.mark.parametrize("dialect", sorted(TABLES))
@pytest.mark.parametrize("case", sorted(CASES))
def test_training_set_sql_matches_the_golden_file(dialect: str, case: str) -> None:
    path = GOLDEN / dialect / f"{case}.sql"
    sql = _render(dialect, CASES[case])
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql)
    assert path.exists(), f"{path} is missing: run with RTML_UPDATE_GOLDEN=1 to write it"
    assert sql == path.read_text(), f"{path} differs: if intended, regenerate with RTML_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("dialect", sorted(TABLES))
def test_golden_sql_parses_in_its_dialect(dialect: str) -> None:
    for case in CASES:
        sqlglot.parse_one((GOLDEN / dialect / f"{case}.sql").read_text(), read=dialect)


def test_rendering_is_deterministic() -> None:
    assert _render("duckdb", SpineSource()) == _render("duckdb", SpineSource())


def test_postgres_orders_text_byte_wise_and_divides_as_floats() -> None:
    sql = _render("postgres", SpineSource())
    assert "DIV(" not in sql  # no integer division sneaks in
    assert "CAST(price AS DOUBLE PRECISION) / NULLIF(product_stats__price_7d, 0)" in sql
