"""Synthetic and replayed input data for the e-commerce example.

* :func:`generate` -- synthetic clickstream with a planted, known purchase probability
  (:mod:`rtml.datagen.ecommerce`, :mod:`rtml.datagen.planted`, :mod:`rtml.datagen.dirty`);
* :func:`read_csv_events` -- rows of the public data set's CSV files as events
  (:mod:`rtml.datagen.csv_replay`);
* :class:`RawTopicWriter` -- raw lines into a project's raw topic (:mod:`rtml.datagen.records`).
"""

from rtml.datagen.csv_replay import csv_row_to_event, event_to_line, read_csv_events
from rtml.datagen.ecommerce import (
    Generation,
    GenerationSummary,
    TruthRow,
    generate,
    read_truth,
    write_truth,
)
from rtml.datagen.planted import COEFFICIENTS, INTERCEPT, CartFeatures, rank_auc
from rtml.datagen.records import RawTopicWriter, to_log_record

__all__ = [
    "COEFFICIENTS",
    "INTERCEPT",
    "CartFeatures",
    "Generation",
    "GenerationSummary",
    "RawTopicWriter",
    "TruthRow",
    "csv_row_to_event",
    "event_to_line",
    "generate",
    "read_csv_events",
    "read_truth",
    "rank_auc",
    "to_log_record",
    "write_truth",
]
