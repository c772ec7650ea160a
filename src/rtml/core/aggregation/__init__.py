"""The aggregation core: partial aggregates in tiles, an exact head, reads at any covered t.

No I/O and no backend here. Definitions (``FeatureView``) are compiled by
:func:`build` / :func:`build_view` into runtimes that apply columnar event batches and
answer ``read(key, t_ms)`` with the semantics of DESIGN.md (docs/features.md):

    runtime = build_view(user_activity)
    runtime.apply(EventBatch.from_columns(ts_ms, event_ids, {"user_id": [...], ...}))
    runtime.read(42, t_ms)  # {"views_10m": 3, ...}
    blob = runtime.state_of(42)  # one key's state for an online store
    StateReader(user_activity).read(blob, t_ms)  # the same values
"""

from rtml.core.aggregation.batch import Column, EventBatch, column
from rtml.core.aggregation.functions import Function, function_for
from rtml.core.aggregation.head import HeadSlice
from rtml.core.aggregation.layout import DEFAULT_EXACT_FOR, ViewPlan, decompose, level_sizes, plan_view
from rtml.core.aggregation.read import NotCoveredError, empty_values
from rtml.core.aggregation.runtime import Aggregator, Applied, ViewAggregator, build, build_view
from rtml.core.aggregation.state import KeyState, StaleStateError, StateReader, decode_key

__all__ = [
    "DEFAULT_EXACT_FOR",
    "Aggregator",
    "Applied",
    "Column",
    "EventBatch",
    "Function",
    "HeadSlice",
    "KeyState",
    "NotCoveredError",
    "StaleStateError",
    "StateReader",
    "ViewAggregator",
    "ViewPlan",
    "build",
    "build_view",
    "column",
    "decode_key",
    "decompose",
    "empty_values",
    "function_for",
    "level_sizes",
    "plan_view",
]
