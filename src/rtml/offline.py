"""The offline side of a project, in Python: load events, build training sets.

* :func:`load_events` validates raw event lines with the project's validator and appends
  the valid ones to the offline store (the streaming engine appends live events the
  same way; this is for files, tests and backfills);
* :func:`build_training_set` builds a model's point-in-time training set
  (``pyarrow.Table``; ``table.to_pandas()`` if pandas is installed);
* :func:`read_spine` reads a user's spine file (CSV or Parquet).

See docs/offline-store.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from rtml.backends.offline_store import OfflineStore, Progress, StoredEvent, open_offline_store
from rtml.core.pit import EVENT_TIME, LABEL, EventTable, TrainingSetPlan, plan_training_set
from rtml.core.validation import Valid, Validator
from rtml.definitions.source import Source
from rtml.errors import InvalidInputError
from rtml.project import Project

if TYPE_CHECKING:
    import pyarrow as pa

BATCH = 50_000


def offline_store(project: Project) -> OfflineStore:
    """The project's configured offline store (the caller closes it)."""
    return open_offline_store(project.config.offline_store, data_dir=project.data_dir)


def event_tables(project: Project) -> dict[str, EventTable]:
    """The events table layout of each of the project's sources."""
    defs = project.definitions
    return {name: EventTable.of(source, defs.schemas[name]) for name, source in defs.sources.items()}


@dataclass
class LoadSummary:
    lines: int = 0
    valid: int = 0
    invalid: int = 0
    appended: int = 0  # new rows: valid events whose id was not stored yet
    invalid_by_code: dict[str, int] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        return self.valid - self.appended


def load_events(
    project: Project,
    lines: Iterable[bytes],
    *,
    source: str | None = None,
    store: OfflineStore | None = None,
    progress: Progress | None = None,
    total: int | None = None,
) -> LoadSummary:
    """Validate raw event ``lines`` of ``source`` (default: the project's only source) and
    append the valid ones. Invalid lines are counted by error code, not stored; an event
    whose id is stored already is not stored again."""
    src = _source(project, source)
    schema = project.definitions.schemas[src.name]
    validator = Validator.build(src, schema.document)
    table = event_tables(project)[src.name]
    summary = LoadSummary()
    own = store is None
    target = offline_store(project) if store is None else store
    try:
        for batch in _batches(lines, BATCH):
            summary.lines += len(batch)
            valid: list[StoredEvent] = []
            for outcome in validator.validate_many(batch):
                if isinstance(outcome, Valid):
                    valid.append(stored_event(outcome))
                else:
                    summary.invalid_by_code[outcome.code] = summary.invalid_by_code.get(outcome.code, 0) + 1
            summary.valid += len(valid)
            summary.invalid += len(batch) - len(valid)
            summary.appended += target.append(table, valid)
            if progress is not None and total:
                progress(min(summary.lines / total, 1.0))
    finally:
        if own:
            target.close()
    return summary


def stored_event(valid: Valid) -> StoredEvent:
    """A validated event as the offline store takes it."""
    return StoredEvent(valid.event_id, valid.event_time_ms, msgspec.json.decode(valid.payload))


def training_plan(project: Project, model_name: str) -> TrainingSetPlan:
    return plan_training_set(project.definitions.model(model_name), event_tables(project))


def build_training_set(
    project: Project,
    model_name: str,
    spine: pa.Table | str | Path | None = None,
    *,
    include_incomplete: bool = False,
    store: OfflineStore | None = None,
    progress: Progress | None = None,
) -> pa.Table:
    """The point-in-time training set of model ``model_name``.

    ``spine`` None uses the label's prediction points; otherwise a table (or a CSV /
    Parquet file) with the label's join keys and a time column (``event_time`` or
    ``ts_ms``). Columns: ``event_id`` (or ``spine_row``), the keys, ``event_time``, the
    request fields, every feature of the model in order, ``label``. Rows whose label
    horizon reaches past the last stored event are dropped unless ``include_incomplete``
    (their label is then NULL).
    """
    from rtml.backends.offline_store.arrow import normalize_spine

    plan = training_plan(project, model_name)
    normalized = None
    if spine is not None:
        table = read_spine(spine) if isinstance(spine, str | Path) else spine
        normalized, _ = normalize_spine(table, plan)
    own = store is None
    target = offline_store(project) if store is None else store
    try:
        return target.training_set(
            plan, spine=normalized, include_incomplete=include_incomplete, progress=progress
        )
    finally:
        if own:
            target.close()


def read_spine(path: str | Path) -> pa.Table:
    """A spine file: ``.csv`` or ``.parquet``."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"spine file {file} does not exist. Fix: check the path")
    try:
        if file.suffix.lower() == ".csv":
            return pa_csv.read_csv(file)
        if file.suffix.lower() in {".parquet", ".pq"}:
            return pq.read_table(file)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInputError(f"spine file {file} cannot be read ({exc})") from None
    raise InvalidInputError(f"spine file {file}: use a .csv or .parquet file")


@dataclass(frozen=True)
class TrainingSetSummary:
    rows: int
    positives: int | None
    features: int
    first: datetime | None
    last: datetime | None


def summarize(table: pa.Table, plan: TrainingSetPlan) -> TrainingSetSummary:
    import pyarrow.compute as pc

    positives = pc.sum(table.column(LABEL)).as_py() if table.num_rows else 0
    times = table.column(EVENT_TIME)
    bounds = pc.min_max(times).as_py() if table.num_rows else {"min": None, "max": None}
    return TrainingSetSummary(
        rows=table.num_rows,
        positives=None if positives is None else int(positives),
        features=len(plan.feature_names),
        first=bounds["min"],
        last=bounds["max"],
    )


def _source(project: Project, name: str | None) -> Source:
    sources = project.definitions.sources
    if name is not None:
        if name not in sources:
            raise InvalidInputError(f"no source named {name!r}. Fix: use one of {', '.join(sorted(sources))}")
        return sources[name]
    if len(sources) != 1:
        raise InvalidInputError(
            f"the project defines {len(sources)} sources ({', '.join(sorted(sources))}). Fix: name one"
        )
    return next(iter(sources.values()))


def _batches(lines: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for line in lines:
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
