"""``ScoringService``: request rows -> online features -> champion model -> scores -> log.

The whole prediction path without a web framework, so that the HTTP router
(:mod:`.predict`) and a Ray Serve deployment call the same object:

1. :meth:`ScoringService.admit` -- at most ``server.predict.max_in_flight`` requests at
   once; one more raises :class:`OverloadedError` (503 + ``Retry-After``) instead of
   queueing without bound;
2. the model's predictor is taken once from the :class:`~.models.ModelHolder` (a swap
   during the request does not change it);
3. the rows are checked (:meth:`Predictor.validate`: 400 naming the row and field);
4. the features are read from the online store as of now (one store round trip for all
   rows), on-demand features computed; a key the store does not hold reads the documented
   defaults and is flagged in ``missing``. A store that is down raises 503, or -- with
   ``features_default_on_store_down`` -- every row gets the defaults and ``store_down``;
5. every row is scored in one ``inplace_predict`` call;
6. the rows, with the exact feature values served and the version, are queued for the
   prediction log (:class:`~.prediction_log.PredictionLogger`), off the request path.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from rtml.backends.prediction_log.base import PredictionRecord
from rtml.core.predict import Predictor
from rtml.errors import BackendUnavailableError, RtmlError
from rtml.features import MISSING, OnlineFeatures, ReadPlan, at_millis
from rtml.services.server.models import ModelHolder
from rtml.services.server.prediction_log import PredictionLogger
from rtml.services.server.settings import PredictSettings
from rtml.timeutil import from_millis

_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class OverloadedError(RtmlError):
    """More prediction requests at once than ``server.predict.max_in_flight``."""

    http_status = 503


@dataclass(frozen=True)
class Scored:
    """One scored row."""

    request_id: str
    score: float
    missing: list[str]
    features: dict[str, Any]  # the model inputs as served, in the version's order


@dataclass(frozen=True)
class ScoredBatch:
    model: str
    version: str
    rows: list[Scored]
    store_down: bool


class ScoringService:
    def __init__(
        self,
        holder: ModelHolder,
        reader: OnlineFeatures,
        settings: PredictSettings,
        *,
        log: PredictionLogger | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.holder = holder
        self.reader = reader
        self.settings = settings
        self.log = log
        self._slots = threading.BoundedSemaphore(settings.max_in_flight)
        registry = registry if registry is not None else CollectorRegistry()
        self.predictions = Counter(
            "rtml_predictions", "Rows scored, by model and version", ["model", "version"], registry=registry
        )
        self.rejected = Counter(
            "rtml_predict_overloaded",
            "Prediction requests refused with 503: max_in_flight reached",
            registry=registry,
        )
        self.inline_paused = Counter(
            "rtml_predict_inline_paused",
            "Times single rows went to the worker threads for server.predict.inline_pause_s "
            "(an inline call was slow or failed on the online store)",
            registry=registry,
        )
        self.defaults = Counter(
            "rtml_predict_defaulted_rows",
            "Rows scored with default features: unknown entity (missing) or store down",
            ["model", "reason"],
            registry=registry,
        )
        self.rows = Histogram(
            "rtml_predict_rows", "Rows per prediction request", buckets=_BATCH_BUCKETS, registry=registry
        )

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of ``max_in_flight`` slots for a request, or refuse it at once."""
        if not self._slots.acquire(blocking=False):
            self.rejected.inc()
            raise OverloadedError(
                f"the server is answering {self.settings.max_in_flight} prediction requests already "
                "(server.predict.max_in_flight). Fix: retry after Retry-After seconds, or add replicas"
            )
        try:
            yield
        finally:
            self._slots.release()

    def predict(
        self,
        model: str,
        rows: Sequence[Any],
        *,
        request_id: str | None = None,
        at: str | None = None,
        single: bool = False,
    ) -> ScoredBatch:
        """Score ``rows`` (request objects) with ``model``'s serving version. Blocking: the
        store read and the scoring run here (call it from a worker thread). ``single``: one
        row sent as the body (errors name ``body.<field>``, not ``rows[0].<field>``)."""
        predictor = self.holder.get(model)
        if single and len(rows) == 1:
            clean = [predictor.validate_row(rows[0], "body")]
        else:
            clean = predictor.validate(list(rows))
        t_ms = at_millis(at)
        plan = self.reader.plan(predictor.model)
        store_down = False
        try:
            feature_rows = self.reader.read(plan, clean, at=from_millis(t_ms))
        except BackendUnavailableError:
            if not self.settings.features_default_on_store_down:
                raise
            store_down = True
            feature_rows = default_features(plan, clean)
        scores = predictor.score(feature_rows)
        ids = _request_ids(request_id, len(clean))
        out = [
            Scored(request_id=rid, score=score, missing=list(f[MISSING]), features=predictor.features_of(f))
            for rid, score, f in zip(ids, scores, feature_rows, strict=True)
        ]
        self._count(predictor, out, store_down)
        if self.log is not None:
            self.log.submit(_records(predictor, clean, out, t_ms))
        return ScoredBatch(model=predictor.name, version=predictor.version, rows=out, store_down=store_down)

    def ready(self) -> dict[str, Any]:
        """Whether the online store answers and every model has a version loaded."""
        store_ok, store_error = True, None
        try:
            for view in {v.view.name for m in self.holder.models for v in self.reader.plan(m).views}:
                self.reader.store.fingerprint(view)
        except RtmlError as exc:
            store_ok, store_error = False, str(exc)
        models = self.holder.status()
        ready = store_ok and all(m["loaded"] for m in models.values())
        return {"ready": ready, "online_store": {"ok": store_ok, "error": store_error}, "models": models}

    def _count(self, predictor: Predictor, rows: list[Scored], store_down: bool) -> None:
        self.predictions.labels(predictor.name, predictor.version).inc(len(rows))
        self.rows.observe(len(rows))
        if store_down:
            self.defaults.labels(predictor.name, "store_down").inc(len(rows))
        else:
            missing = sum(1 for r in rows if r.missing)
            if missing:
                self.defaults.labels(predictor.name, "missing").inc(missing)


def default_features(plan: ReadPlan, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What a read returns for keys the store does not hold: every view's documented
    defaults (count/sum/count_distinct 0, others null), on-demand features computed on
    them, and every view in ``_missing``."""
    base: dict[str, Any] = {}
    for vr in plan.views:
        for feature, qualified in vr.features:
            base[qualified] = vr.defaults[feature]
    views = [vr.view.name for vr in plan.views]
    out = []
    for row in rows:
        values = dict(base)
        context = {**values, **{name: row.get(name) for name, _ in plan.request}}
        for name, fn in plan.on_demand:
            values[name] = fn(context)
        values[MISSING] = list(views)
        out.append(values)
    return out


def _request_ids(given: str | None, n: int) -> list[str]:
    """One id per row: the caller's (``X-Request-ID``) for a single row, ``<id>-<i>`` for a
    batch; else fresh UUIDs."""
    if given:
        return [given] if n == 1 else [f"{given}-{i}" for i in range(n)]
    return [uuid.uuid4().hex for _ in range(n)]


def _records(
    predictor: Predictor, rows: list[dict[str, Any]], scored: list[Scored], t_ms: int
) -> list[PredictionRecord]:
    keys = [name for name, _ in predictor.spec.keys]
    fields = [name for name, _ in predictor.spec.request]
    return [
        PredictionRecord(
            request_id=s.request_id,
            model=predictor.name,
            version=predictor.version,
            ts_ms=t_ms,
            keys={k: row[k] for k in keys},
            request={f: row[f] for f in fields},
            features=s.features,
            missing=s.missing,
            score=s.score,
        )
        for row, s in zip(rows, scored, strict=True)
    ]
