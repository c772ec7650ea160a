"""The point-in-time training-set query, generated from a :class:`TrainingSetPlan`.

The query is written once, in SQL both engines run (CTEs, ``UNION ALL``, window
functions with constant ``RANGE`` frames, hash joins), parsed with sqlglot and rendered
per dialect -- so the expressions of the definitions (``where``, on-demand features)
keep one meaning everywhere (``/`` is true division, ...). Its parts:

* ``spine``: one row per prediction point (``pid``, ``event_id``, keys, ``t`` in ms, the
  request fields): the label's ``prediction_where`` events, or a user's table;
* one block of CTEs per (view, hop) group, ending in ``gN`` (see :mod:`.groups`);
* ``labels``: the spine rows with an outcome event of the same keys in ``(t, t + horizon]``;
* ``horizon``: the last event time; a row with ``t + horizon`` past it is incomplete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from rtml.core.pit.groups import COLLATE_C, group_sql
from rtml.core.pit.layout import EVENT_ID, TS_MS, check_dialect
from rtml.core.pit.plan import AggSpec, LabelSpec, TrainingSetPlan
from rtml.definitions.schema import ColumnKind

SPINE_TABLE = "rtml_spine"  # the name a user's spine is bound to by the backend
SPINE_ROW = "spine_row"
EVENT_TIME = "event_time"
LABEL = "label"
_REQUEST_TYPES = {"double": "DOUBLE", "bigint": "BIGINT", "string": "VARCHAR", "boolean": "BOOLEAN"}


@dataclass(frozen=True)
class SpineSource:
    """Where the spine rows come from: the label's prediction points, or a user's table
    (bound as ``rtml_spine``: the label's keys, ``t`` in ms, the request fields it has
    and ``spine_row``, the row's position in the user's file)."""

    kind: str = "label"  # "label" | "table"
    request_columns: tuple[str, ...] = ()


def render_training_set(
    plan: TrainingSetPlan,
    dialect: str,
    *,
    tables: dict[str, str],
    spine: SpineSource = SpineSource(),
    include_incomplete: bool = False,
    pretty: bool = True,
) -> str:
    """The training-set query of ``plan`` in ``dialect`` (``duckdb`` or ``postgres``).

    ``tables`` maps each source to its (possibly schema-qualified) events table name.
    Columns: ``event_id`` (or ``spine_row``), the label's keys, ``ts_ms``, the request
    fields, the model's features in order, ``label`` (NULL when incomplete and kept).
    """
    check_dialect(dialect)
    text = _Builder(plan, tables, spine, include_incomplete).build()
    tree = sqlglot.parse_one(text, read="duckdb")
    return tree.transform(_collate_for(dialect)).sql(dialect=dialect, pretty=pretty)


def _collate_for(dialect: str) -> Callable[[exp.Expression], exp.Expression]:
    """Text compares byte-wise in DuckDB; PostgreSQL compares by the database's collation
    unless told ``COLLATE "C"`` (the order of ``last``'s (ts, event_id) text)."""

    def transform(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and node.name.lower() == COLLATE_C:
            arg = node.expressions[0]
            if dialect == "postgres":
                return exp.Collate(this=arg, expression=exp.Identifier(this="C", quoted=True))
            return arg
        return node

    return transform


class _Builder:
    def __init__(
        self, plan: TrainingSetPlan, tables: dict[str, str], spine: SpineSource, include_incomplete: bool
    ) -> None:
        self.plan = plan
        self.tables = tables
        self.spine = spine
        self.include_incomplete = include_incomplete
        label = plan.label
        self.request = [n for n in plan.request if n not in label.keys]
        self.inline: set[str] = set()

    def build(self) -> str:
        label = self.plan.label
        ctes: list[tuple[str, str]] = [("spine", self._spine(label))]
        joins: list[str] = []
        for index, group in enumerate(self.plan.groups):
            g = f"g{index}"
            built = group_sql(g, group, self.tables[group.table.source])
            ctes += built.ctes
            self.inline |= built.inline
            joins.append(f"JOIN {g} ON {g}.pid = s.pid")
        ctes.append(("labels", self._labels(label)))
        ctes.append(("horizon", f"SELECT MAX({TS_MS}) AS last_ts FROM {self.tables[label.table.source]}"))
        return self._final(label, ctes, joins)

    def _spine(self, label: LabelSpec) -> str:
        keys_set = " AND ".join(f"e.{k} IS NOT NULL" for k in label.keys)
        cols = [f"e.{k} AS {k}" for k in label.keys]
        if self.spine.kind == "label":
            first = [
                # any numbering will do (``spine`` is MATERIALIZED, so every reader sees the
                # same one): the result is ordered by (t, event_id), not by pid
                "ROW_NUMBER() OVER () AS pid",
                f"e.{EVENT_ID} AS {EVENT_ID}",
            ]
            present = {n for n in self.request if label.table.kind(n) is not None}
            table, where = (
                self.tables[label.table.source],
                f"({label.prediction_where.render('duckdb')}) AND ",
            )
            time = f"e.{TS_MS} AS t"
        else:
            # the row's position in the file: unique already, and (t, pid) sorts as (t, row)
            first = [f"e.{SPINE_ROW} AS pid", f"e.{SPINE_ROW} AS {SPINE_ROW}"]
            present = set(self.spine.request_columns)
            table, where, time = SPINE_TABLE, "", "e.t AS t"
        request = [
            f"CAST({f'e.{n}' if n in present else 'NULL'} AS {_REQUEST_TYPES[self.plan.request[n]]}) AS {n}"
            for n in self.request
        ]
        return (
            f"SELECT {', '.join([*first, *cols, time, *request])} FROM {table} AS e WHERE {where}{keys_set}"
        )

    def _labels(self, label: LabelSpec) -> str:
        same_keys = " AND ".join(f"o.{k} = s.{k}" for k in label.keys)
        table = self.tables[label.table.source]
        return (
            f"SELECT s.pid FROM spine AS s WHERE EXISTS (SELECT 1 FROM {table} AS o "
            f"WHERE {same_keys} AND o.{TS_MS} > s.t AND o.{TS_MS} <= s.t + {label.horizon_ms} "
            f"AND ({label.outcome_where.render('duckdb')}))"
        )

    def _final(self, label: LabelSpec, ctes: list[tuple[str, str]], joins: list[str]) -> str:
        first = EVENT_ID if self.spine.kind == "label" else SPINE_ROW
        on_demand = {od.name for od in self.plan.on_demand}
        features = [n for n in self.plan.feature_names if n not in on_demand]
        complete = f"s.t + {label.horizon_ms} <= horizon.last_ts"
        label_value = "CASE WHEN labels.pid IS NULL THEN 0 ELSE 1 END"
        if self.include_incomplete:
            label_value = f"CASE WHEN {complete} THEN {label_value} END"
        owner = {w.name: f"g{i}" for i, g in enumerate(self.plan.groups) for a in g.aggs for w in a.windows}
        inner = [
            "s.pid",
            f"s.{first}",
            *(f"s.{k}" for k in label.keys),
            "s.t",
            *(f"s.{n}" for n in self.request),
        ]
        inner += [f"{owner[n]}.{n} AS {n}" for n in features]
        inner.append(f"{label_value} AS {LABEL}")
        outer = [first, *label.keys, f"t AS {TS_MS}", *self.request, *features]
        outer += [f"{od.expression.render('duckdb')} AS {od.name}" for od in self.plan.on_demand]
        outer.append(LABEL)
        where = "" if self.include_incomplete else f" WHERE {complete}"
        from_ = f"spine AS s {' '.join(joins)} LEFT JOIN labels ON labels.pid = s.pid CROSS JOIN horizon"
        with_ = ",\n".join(f"{name} AS {_materialized(name, self.inline)}({body})" for name, body in ctes)
        rows = f"SELECT {', '.join(inner)} FROM {from_}{where}"
        order = f"f.{EVENT_ID}" if self.spine.kind == "label" else "f.pid"
        return f"WITH {with_}\nSELECT {', '.join(outer)} FROM ({rows}) AS f ORDER BY f.t, {order}"


def _materialized(name: str, inline: set[str]) -> str:
    if name == "spine":  # written once: its pid numbering must be the same for every reader
        return "MATERIALIZED "
    return "NOT MATERIALIZED " if name in inline else ""


def output_kind(agg: AggSpec) -> ColumnKind:
    """The kind of a feature's values: integers for counts, the column's kind otherwise."""
    if agg.function in ("count", "count_distinct"):
        return "integer"
    if agg.function == "mean":
        return "number"
    return agg.column_kind or "other"
