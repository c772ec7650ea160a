"""Point-in-time training sets: definitions in, SQL text per dialect out. Pure: no I/O.

``compile_training_set(model, tables, dialect=...)`` plans the model's features by
(view, hop) group (:mod:`rtml.core.pit.plan`) and writes the query
(:mod:`rtml.core.pit.sql`); :mod:`rtml.core.pit.layout` is the events table both sides
agree on. See docs/offline-store.md.
"""

from rtml.core.pit.layout import EVENT_ID, TS_MS, EventTable, TableColumn, table_name
from rtml.core.pit.plan import TrainingSetPlan, plan_training_set
from rtml.core.pit.sql import EVENT_TIME, LABEL, SPINE_ROW, SPINE_TABLE, SpineSource, render_training_set

__all__ = [
    "EVENT_ID",
    "EVENT_TIME",
    "LABEL",
    "SPINE_ROW",
    "SPINE_TABLE",
    "TS_MS",
    "EventTable",
    "SpineSource",
    "TableColumn",
    "TrainingSetPlan",
    "plan_training_set",
    "render_training_set",
    "table_name",
]
