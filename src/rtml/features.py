"""Online feature reads: ``get_online_features(project, model_or_views, entity_rows, at=None)``.

For each entity row (a dict of join keys, plus a model's request fields) it returns every
feature by qualified name (``user_activity__views_1h``), a model's on-demand features
computed from the request fields and those values, and ``"_missing"``: the views whose
state the online store does not hold for the row's key. Their features read as the
documented defaults (``count``/``count_distinct``/``sum`` 0, the others ``None``), the same
values as a key with no events. See docs/online-store.md.

The store holds one state blob per (view, key) (:mod:`rtml.backends.online_store`); a read
turns it into the chosen features' values at ``at`` with a
:class:`~rtml.core.aggregation.fastread.FastStateReader` per view (compiled once per plan;
it gives what the general :class:`~rtml.core.aggregation.StateReader` gives, and keeps the
last decoded states by their bytes). All rows' keys of a view are fetched with one
``read`` call. ``at`` defaults to now (UTC) and may be any time the state covers: an
earlier one raises :class:`~rtml.core.aggregation.NotCoveredError`. A view whose stored
state was built by another definition raises :class:`~rtml.core.aggregation.StaleStateError`
(the fix is ``rtml backfill``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

from rtml.backends.online_store import Key, OnlineStore
from rtml.backends.online_store.factory import open_online_store
from rtml.core.aggregation import StaleStateError, StateReader, empty_values
from rtml.core.aggregation.fastread import FastStateReader
from rtml.core.sqleval import compile_expression
from rtml.definitions.feature_view import FeatureRef, FeatureView
from rtml.definitions.model import Model
from rtml.errors import InvalidInputError, RtmlError
from rtml.project import Project
from rtml.timeutil import from_millis, parse_timestamp, to_millis, utc_now

MISSING = "_missing"
# How long a reader trusts a view's stored fingerprint before asking the store again. Each
# state blob read is also checked against the definition, so stale state is never served.
FINGERPRINT_CHECK_S = 1.0

Target = str | Model | FeatureView | Sequence[str | FeatureView]
At = datetime | str | None
_INTEGER = re.compile(r"^[+-]?\d+$")


class NotFoundError(RtmlError):
    """A read names a feature view or model the project does not define."""

    http_status = 404


@dataclass(frozen=True)
class _ViewRead:
    view: FeatureView
    reader: StateReader
    keys: tuple[tuple[str, str], ...]  # (join key, schema kind)
    features: tuple[tuple[str, str], ...]  # (feature, qualified name)
    defaults: dict[str, Any]
    fast: FastStateReader  # reads the features (in order) from a state blob
    qualified: tuple[str, ...]  # the features' qualified names, in order


@dataclass(frozen=True)
class ReadPlan:
    """What a read of a model or of some views computes, resolved once."""

    views: tuple[_ViewRead, ...]
    on_demand: tuple[tuple[str, Callable[[Any], Any]], ...]
    request: tuple[tuple[str, str], ...]  # (field, type)

    @property
    def names(self) -> list[str]:
        """The output's feature names, in order (without ``_missing``)."""
        return [q for v in self.views for _, q in v.features] + [n for n, _ in self.on_demand]


class OnlineFeatures:
    """Reads features of one project's online store; keeps the store open between calls.

    ``store``: an open store to read (tests, benchmarks); by default the project's, opened
    on first use and closed by :meth:`close`."""

    def __init__(self, project: Project, store: OnlineStore | None = None) -> None:
        self.project = project
        self._store = store
        self._owns_store = store is None
        self._plans: dict[Any, tuple[Target, ReadPlan]] = {}
        self._checked: dict[str, float] = {}  # view -> when its fingerprint was last checked
        self._lock = threading.Lock()

    @property
    def store(self) -> OnlineStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    config = self.project.config
                    self._store = open_online_store(
                        config.online_store, project=config.project, data_dir=self.project.data_dir
                    )
        return self._store

    def get(
        self, model_or_views: Target, entity_rows: Sequence[Mapping[str, Any]], at: At = None
    ) -> list[dict[str, Any]]:
        """Features of each entity row at ``at`` (default: now). See the module's docstring."""
        return self.read(self.plan(model_or_views), entity_rows, at)

    def plan(self, target: Target) -> ReadPlan:
        """The plan of a model (name or object) or of views (names or objects), cached."""
        cache_key = _cache_key(target)
        cached = self._plans.get(cache_key) if cache_key is not None else None
        if cached is not None:
            return cached[1]
        plan = _make_plan(self.project, target)
        if cache_key is not None:
            self._plans[cache_key] = (target, plan)  # the target kept alive: its id stays its own
        return plan

    def read(
        self, plan: ReadPlan, entity_rows: Sequence[Mapping[str, Any]], at: At = None
    ) -> list[dict[str, Any]]:
        t_ms = at_millis(at)
        rows = [r if isinstance(r, Mapping) else _not_a_row(i, r) for i, r in enumerate(entity_rows)]
        out: list[dict[str, Any]] = [{} for _ in rows]
        missing: list[list[str]] = [[] for _ in rows]
        keys = {vr.view.name: [_key_of(vr, row, i) for i, row in enumerate(rows)] for vr in plan.views}
        store = self.store
        for vr in plan.views:
            self._check_fingerprint(store, vr)
        blobs = _fetch(store, {view: list(dict.fromkeys(k)) for view, k in keys.items()})
        for vr in plan.views:
            name = vr.view.name
            found_blobs = blobs[name]
            qualified, fast = vr.qualified, vr.fast
            values: dict[tuple[Any, ...], list[Any]] = {}
            for i, key in enumerate(keys[name]):
                found = values.get(key)
                if found is None:
                    blob = found_blobs[key]
                    found = values[key] = fast.defaults if blob is None else fast.read(blob, t_ms)
                if found is fast.defaults:
                    missing[i].append(name)
                out[i].update(zip(qualified, found, strict=True))
        if plan.request or plan.on_demand:
            for i, row in enumerate(rows):
                context = {**out[i], **_request_of(plan, row, i)}
                for name, fn in plan.on_demand:
                    out[i][name] = fn(context)
        for i, target in enumerate(out):
            target[MISSING] = missing[i]
        return out

    def _check_fingerprint(self, store: OnlineStore, vr: _ViewRead) -> None:
        name = vr.view.name
        now = time.monotonic()
        if now - self._checked.get(name, -FINGERPRINT_CHECK_S) < FINGERPRINT_CHECK_S:
            return
        stored = store.fingerprint(name)
        if stored is not None and stored != vr.reader.fingerprint:
            raise StaleStateError(
                f"the online store holds the state of feature view {name!r} as built by another "
                f"definition (fingerprint {stored}, the definition now is {vr.reader.fingerprint}). "
                f"Fix: run `rtml backfill --view {name}` to rebuild it from the offline events"
            )
        self._checked[name] = now

    def close(self) -> None:
        if self._owns_store and self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> OnlineFeatures:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def get_online_features(
    project: Project | str | Path,
    model_or_views: Target,
    entity_rows: Sequence[Mapping[str, Any]],
    at: At = None,
    *,
    store: OnlineStore | None = None,
) -> list[dict[str, Any]]:
    """Features of each of ``entity_rows`` at ``at`` (default now, UTC).

    ``model_or_views``: a model's name or ``Model`` (its features, on-demand ones
    included; rows also carry its request fields), or a view's name / ``FeatureView`` or a
    list of them (all their features). A name is looked up among models first.
    ``entity_rows``: dicts of the join keys (``{"user_id": 42, "product_id": 7}``); a
    string such as ``"42"`` is accepted for an integer key. Opens the project's online
    store for the call unless ``store`` is given; to read often, keep an
    :class:`OnlineFeatures` open instead.
    """
    loaded = project if isinstance(project, Project) else Project.load(project)
    with OnlineFeatures(loaded, store) as reader:
        return reader.get(model_or_views, entity_rows, at)


def at_millis(at: At) -> int:
    """``at`` as ms since the epoch: None is now; a str is ISO-8601 with a zone."""
    if at is None:
        return to_millis(utc_now())
    if isinstance(at, str):
        try:
            return to_millis(parse_timestamp(at))
        except ValueError as exc:
            hint = " (in a URL, write '+' as %2B, or use Z)" if " " in at.strip() else ""
            raise InvalidInputError(
                f"'at' must be an ISO-8601 time with a zone such as '2019-10-15T12:00:00Z', "
                f"got {at!r}{hint} ({exc})"
            ) from None
    if isinstance(at, datetime):
        try:
            return to_millis(at)
        except ValueError as exc:
            raise InvalidInputError(f"'at': {exc}") from None
    raise InvalidInputError(f"'at' must be a datetime or an ISO-8601 string, got {at!r}")


def at_iso(t_ms: int) -> str:
    return from_millis(t_ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@runtime_checkable
class MultiViewRead(Protocol):
    """An optional capability of a store (Redis): the keys of several views in one round trip."""

    def read_many(self, requests: Mapping[str, Sequence[Key]]) -> dict[str, list[bytes | None]]: ...


def _multi_view(store: OnlineStore) -> bool:
    """Whether ``store`` reads several views at once (a runtime protocol check is slow: the
    class is looked at once per type; an instance only where its class makes attributes up)."""
    by_class, dynamic = _store_kind(type(store))
    return by_class or (dynamic and isinstance(store, MultiViewRead))


@lru_cache(maxsize=64)
def _store_kind(kind: type) -> tuple[bool, bool]:
    return callable(getattr(kind, "read_many", None)), hasattr(kind, "__getattr__")


def _fetch(
    store: OnlineStore, requests: dict[str, list[tuple[Any, ...]]]
) -> dict[str, dict[tuple[Any, ...], bytes | None]]:
    """The blob of each view's keys: one ``read_many`` where the store has it, else one
    ``read`` per view."""
    wanted = {view: keys for view, keys in requests.items() if keys}
    if _multi_view(store):
        got = cast(MultiViewRead, store).read_many(wanted)
    else:
        got = {view: store.read(view, keys) for view, keys in wanted.items()}
    return {
        view: dict(zip(keys, got.get(view, []), strict=True)) if keys else {}
        for view, keys in requests.items()
    }


# -- plans --------------------------------------------------------------------------------


def _cache_key(target: Target) -> Any:
    """Names as they are, definition objects by identity (a Model holds dicts: unhashable)."""
    if isinstance(target, str):
        return target
    if isinstance(target, Model | FeatureView):
        return ("id", id(target))
    try:
        return tuple(x if isinstance(x, str) else ("id", id(x)) for x in target)
    except TypeError:
        return None


def _make_plan(project: Project, target: Target) -> ReadPlan:
    defs = project.definitions
    if isinstance(target, str) and target in defs.models:
        target = defs.models[target]
    if isinstance(target, Model):
        return _model_plan(project, target)
    items = [target] if isinstance(target, str | FeatureView) else list(target)
    if not items:
        raise InvalidInputError("name at least one feature view (or a model) to read")
    views = [item if isinstance(item, FeatureView) else _view(project, item) for item in items]
    return ReadPlan(
        views=tuple(_view_read(project, v, [f.name for f in v.features]) for v in dict.fromkeys(views)),
        on_demand=(),
        request=(),
    )


def _model_plan(project: Project, model: Model) -> ReadPlan:
    chosen: dict[str, list[str]] = {v.name: [] for v in model.feature_views}
    views = {v.name: v for v in model.feature_views}
    for item in model.features:
        if isinstance(item, FeatureView):
            chosen[item.name].extend(f.name for f in item.features)
        elif isinstance(item, FeatureRef):
            chosen[item.view.name].append(item.feature)
    return ReadPlan(
        views=tuple(_view_read(project, views[name], names) for name, names in chosen.items()),
        on_demand=tuple((f.name, compile_expression(f.parsed)) for f in model.on_demand),
        request=tuple(model.request_fields.items()),
    )


def _view(project: Project, name: object) -> FeatureView:
    views = project.definitions.feature_views
    if not isinstance(name, str) or name not in views:
        models = sorted(project.definitions.models)
        raise NotFoundError(
            f"no feature view or model named {name!r}. Fix: use one of the views "
            f"{', '.join(sorted(views)) or 'none'} or the models {', '.join(models) or 'none'}"
        )
    return views[name]


def _view_read(project: Project, view: FeatureView, features: list[str]) -> _ViewRead:
    schema = project.definitions.schemas.get(view.source.name)
    kinds = []
    for key in view.join_keys:
        column = schema.column(key) if schema is not None else None
        kinds.append((key, column.kind if column is not None else "other"))
    reader = StateReader(view)
    names = {f.name: f.qualified_name for f in view.features}
    chosen = tuple(dict.fromkeys(features))
    return _ViewRead(
        view=view,
        reader=reader,
        keys=tuple(kinds),
        features=tuple((f, names[f]) for f in chosen),
        defaults=empty_values(reader.plan),
        fast=FastStateReader(view, chosen),
        qualified=tuple(names[f] for f in chosen),
    )


# -- entity rows --------------------------------------------------------------------------


def _not_a_row(index: int, row: object) -> dict[str, Any]:
    raise InvalidInputError(f"entity row {index} must be an object of join keys, got {row!r}")


def _key_of(vr: _ViewRead, row: Mapping[str, Any], index: int) -> tuple[Any, ...]:
    values = []
    for key, kind in vr.keys:
        if key not in row or row[key] is None:
            raise InvalidInputError(
                f"entity row {index}: join key {key!r} is missing (feature view {vr.view.name!r} is keyed "
                f"by {', '.join(vr.view.join_keys)}). Fix: give {key!r} in every row"
            )
        values.append(_coerce(row[key], kind, f"entity row {index}: join key {key!r}"))
    return tuple(values)


def _request_of(plan: ReadPlan, row: Mapping[str, Any], index: int) -> dict[str, Any]:
    out = {}
    for name, kind in plan.request:
        if name not in row:
            raise InvalidInputError(
                f"entity row {index}: request field {name!r} ({kind}) is missing; the model's "
                f"on-demand features read it. Fix: give {name!r} in every row (null for none)"
            )
        value = row[name]
        out[name] = None if value is None else _coerce(value, _REQUEST_KINDS[kind], f"request field {name!r}")
    return out


_REQUEST_KINDS = {"double": "number", "bigint": "integer", "string": "string", "boolean": "boolean"}


def _coerce(value: Any, kind: str, what: str) -> Any:
    """``value`` as the schema's type; strings are parsed (query strings, the CLI)."""
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _INTEGER.match(value.strip()):
            return int(value)
    elif kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind == "string":
        if isinstance(value, str):
            return value
    elif kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
    else:
        return value
    raise InvalidInputError(f"{what} must be {_ARTICLE.get(kind, kind)}, got {value!r}")


_ARTICLE = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false"}
