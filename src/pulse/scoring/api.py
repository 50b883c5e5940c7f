"""`GET /v1/scores/{customer_id}`: a real-time score from the online store (part of `pulse serve`).

    GET /v1/scores/c000042?model=purchase_propensity
    200 {"customer_id": "c000042", "model": "purchase_propensity", "model_version": "<run_id>",
         "algorithm": "...", "score": 0.123, "percentile": 87, "percentile_as_of": "...",
         "realtime": {"minutes_since_last_event": 3.2, "events_30m_now": 5, ...}}

- Features: the champion's own feature list, read from Feast's online store through its feature service
  (the same values `pulse score` uses), plus the real-time view and its on-demand features for context.
- Percentile: where the score falls in the latest `ml.scores` distribution of the same run (bisection of
  the sorted scores, ranked as `pulse score` ranks: ties share the higher percentile); `null` until that
  run has been batch-scored.
- The model is loaded once and kept; every `check_seconds` (5 s) one small query compares the champion's
  run id (and its latest scoring) with what is loaded, and a new champion is loaded on the next request.
- Auth: `Authorization: Bearer <PULSE_READ_KEY>`, else 401 (scores are about people; no CORS here).
- Errors: unknown customer (no online features for the model) 404 `unknown_customer`; a model name with
  no champion 404 `no_model`; a BG/NBD baseline champion needs order history, which the online store does
  not hold: 409 `needs_order_history` (use `ml.scores` from `pulse score` for that model).
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pulse.auth import bearer_token, same_secret
from pulse.config import Settings

DEFAULT_MODEL = "purchase_propensity"
RFM_COLUMNS = ("rfm_recency_score", "rfm_frequency_score", "rfm_monetary_score")
REALTIME_REFS = (
    "customer_realtime:last_event_at",
    "customer_realtime:last_event_name",
    "customer_realtime:cart_value",
    "customer_realtime:cart_items",
    "customer_realtime:last_viewed_category",
    "customer_realtime_now:minutes_since_last_event",
    "customer_realtime_now:events_30m_now",
    "customer_realtime_now:product_views_30m_now",
)

_encode = msgspec.json.Encoder().encode
# Rows reach the model as numpy arrays in the model's own column order, so sklearn's reminder that it was
# fitted with feature names says nothing here.
warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)


class ScoreError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_scoring_thread = threading.local()


def _one_openmp_thread() -> None:
    """One-row predictions gain nothing from OpenMP threads and lose milliseconds waking them
    (HistGradientBoosting: about 28 ms instead of 5 on a busy 2-core machine). The limit is per thread and
    costs about 1 ms to set, so each thread that scores sets it once."""
    if not getattr(_scoring_thread, "single_openmp", False):
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency

        threadpool_limits(1, user_api="openmp")
        _scoring_thread.single_openmp = True


class RowModel:
    """A fitted model scoring one row of floats in `columns` order, with as little pandas as it allows.

    A one-row DataFrame and sklearn's checks of it cost about 1 ms, several times the prediction. The
    trailing steps of a Pipeline that come from sklearn itself take a numpy row; steps before them (Pulse's
    own transformers, which read columns by name, e.g. `RateFeatures`) still get a DataFrame."""

    def __init__(self, model: Any, columns: list[str], kind: str):
        from sklearn.pipeline import Pipeline

        from pulse.modeling.baseline import RfmModel

        self.model, self.columns, self.kind = model, columns, kind
        self.rfm = isinstance(model, RfmModel)
        steps = [step for _, step in model.steps] if isinstance(model, Pipeline) else [model]
        cut = len(steps)
        while cut and type(steps[cut - 1]).__module__.startswith("sklearn."):
            cut -= 1
        self.head = None if cut == 0 else model[:cut] if isinstance(model, Pipeline) else model
        self.tail = model if cut == 0 else model[cut:] if cut < len(steps) else None

    def predict(self, row: np.ndarray) -> float:
        from pulse.modeling import candidates

        _one_openmp_thread()
        x = row.reshape(1, -1)
        if self.head is None:
            return float(candidates.predict(self.tail, x, self.kind)[0])
        import pandas as pd

        frame = pd.DataFrame(x, columns=self.columns)
        if self.rfm:
            return float(self.model.predict_frame(frame.fillna(0))[0])
        if self.tail is None:
            return float(candidates.predict(self.model, frame, self.kind)[0])
        return float(
            candidates.predict(self.tail, np.asarray(self.head.transform(frame), float), self.kind)[0]
        )


@dataclass
class _Loaded:
    run: Any
    model: RowModel
    refs: list[str]
    columns: list[str]
    scores: np.ndarray | None  # sorted scores of the run's latest batch scoring
    scores_as_of: Any
    checked_at: float
    context: list[str] = field(default_factory=list)  # returned beside the score, not model inputs


def percentile_of(sorted_scores: np.ndarray, score: float) -> int:
    """1..100 as `pulse.scoring.batch.percentiles` ranks (rank method "max"): share of scores <= this one."""
    rank = int(np.searchsorted(sorted_scores, score, side="right"))
    return max(1, min(100, math.ceil(rank / len(sorted_scores) * 100)))


class Scorer:
    def __init__(self, settings: Settings, check_seconds: float = 5.0):
        self.settings = settings
        self.check_seconds = check_seconds
        self._models: dict[str, _Loaded] = {}
        self._store = None
        self._realtime: bool | None = None
        self._lock = threading.Lock()

    @property
    def store(self):
        if self._store is None:
            from pulse.features.store import feature_store

            self._store = feature_store(self.settings)
        return self._store

    def _current(self, name: str) -> tuple[str, Any] | None:
        """(champion run id, latest as_of of its scores): one small query."""
        import sqlalchemy as sa

        from pulse.db import engine

        with engine(self.settings).connect() as conn:
            row = conn.execute(
                sa.text(
                    "select r.run_id, (select max(s.as_of) from ml.scores s "
                    "where s.model_name = r.model_name and s.run_id = r.run_id) "
                    "from ml.model_runs r where r.model_name = :m and r.is_champion"
                ),
                {"m": name},
            ).first()
        return (row[0], row[1]) if row else None

    def _scores(self, run_id: str, as_of) -> np.ndarray | None:
        if as_of is None:
            return None
        import sqlalchemy as sa

        from pulse.db import engine

        with engine(self.settings).connect() as conn:
            values = (
                conn.execute(
                    sa.text("select score from ml.scores where run_id = :r and as_of = :t"),
                    {"r": run_id, "t": as_of},
                )
                .scalars()
                .all()
            )
        return np.sort(np.asarray(values, dtype=float)) if values else None

    def _has_realtime(self) -> bool:
        if self._realtime is None:
            try:
                self.store.get_on_demand_feature_view("customer_realtime_now")
                self._realtime = True
            except Exception:  # noqa: BLE001 - registry applied before the real-time views existed
                self._realtime = False
        return self._realtime

    def _load(self, name: str, run_id: str, as_of) -> _Loaded:
        from pulse.modeling.baseline import RfmModel
        from pulse.modeling.registry import load_run
        from pulse.modeling.signing import ModelSignatureError

        try:
            run, model = load_run(run_id, self.settings)
        except ModelSignatureError as error:
            raise ScoreError(503, "model_refused", str(error)) from error
        columns = list(run.features)
        if isinstance(model, RfmModel):
            columns = [*columns, *(c for c in RFM_COLUMNS if c not in columns)]
        service = self.store.get_feature_service(run.feature_service)
        refs = [
            f"{projection.name_to_use()}:{feature.name}"
            for projection in service.feature_view_projections
            for feature in projection.features
            if feature.name in columns
        ]
        if self._has_realtime():
            refs += REALTIME_REFS
        context = [ref.split(":", 1)[1] for ref in refs if ref.split(":", 1)[1] not in columns]
        row_model = RowModel(model, columns, run.kind)
        scores = self._scores(run_id, as_of)
        return _Loaded(run, row_model, refs, columns, scores, as_of, time.monotonic(), context)

    def is_current(self, name: str) -> bool:
        """Whether `name`'s champion is loaded and needs no registry check now (scoring does no SQL)."""
        entry = self._models.get(name)
        return entry is not None and time.monotonic() - entry.checked_at < self.check_seconds

    def loaded(self, name: str) -> _Loaded:
        """The champion of `name`, reloaded when the registry says it changed (checked every few seconds)."""
        entry = self._models.get(name)
        if entry is not None and time.monotonic() - entry.checked_at < self.check_seconds:
            return entry
        with self._lock:
            entry = self._models.get(name)
            if entry is not None and time.monotonic() - entry.checked_at < self.check_seconds:
                return entry
            current = self._current(name)
            if current is None:
                self._models.pop(name, None)
                raise ScoreError(404, "no_model", f"no champion for model {name!r}: run `pulse train` first")
            run_id, as_of = current
            if entry is None or entry.run.run_id != run_id:
                entry = self._load(name, run_id, as_of)
            elif entry.scores_as_of != as_of:
                entry.scores, entry.scores_as_of = self._scores(run_id, as_of), as_of
            entry.checked_at = time.monotonic()
            self._models[name] = entry
            return entry

    def score(self, customer_id: str, name: str = DEFAULT_MODEL) -> dict[str, Any]:
        entry = self.loaded(name)
        run = entry.run
        if getattr(entry.model.model, "needs_order_history", False):
            raise ScoreError(
                409,
                "needs_order_history",
                f"the {name!r} champion ({run.algorithm}) scores from order history, not online features; "
                "read its batch scores from ml.scores (`pulse score`)",
            )
        values = self.store.get_online_features(
            features=entry.refs, entity_rows=[{"customer_id": customer_id}]
        ).to_dict()
        row = [values[c][0] if c in values else None for c in entry.columns]
        if all(v is None for v in row):
            raise ScoreError(
                404,
                "unknown_customer",
                f"no online features for customer {customer_id!r} (unknown, or not materialised yet)",
            )
        score = entry.model.predict(np.array(row, dtype=float))
        realtime = {}
        for feature in entry.context:
            value = values.get(feature, [None])[0]
            realtime[feature] = value.isoformat() if hasattr(value, "isoformat") else value
        return {
            "customer_id": customer_id,
            "model": name,
            "model_version": run.run_id,
            "algorithm": run.algorithm,
            "feature_service": run.feature_service,
            "score": score,
            "percentile": percentile_of(entry.scores, score) if entry.scores is not None else None,
            "percentile_as_of": entry.scores_as_of.isoformat() if entry.scores_as_of is not None else None,
            "realtime": realtime,
        }


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json")


SCORES_PREFIX = "/v1/scores/"


def score_routes(settings: Settings) -> list[Route]:
    """The scoring API's routes, for the collector app (`pulse serve`): bearer `PULSE_READ_KEY` only."""
    scorer = Scorer(settings)
    read_key = settings.read_key

    async def get_score(request: Request) -> Response:
        if not same_secret(bearer_token(request.headers.get("authorization")), read_key):
            return Response(
                _encode(
                    {"success": False, "code": "unauthorized", "message": "a valid read key is required"}
                ),
                status_code=401,
                media_type="application/json",
                headers={"WWW-Authenticate": 'Bearer realm="pulse-scores"'},
            )
        customer_id = request.path_params["customer_id"]
        name = request.query_params.get("model", DEFAULT_MODEL)
        try:
            if scorer.is_current(name):
                # The usual case: about 1 ms of CPU and one loopback Redis read; a thread hop would cost
                # more than it frees the loop for.
                body = scorer.score(customer_id, name)
            else:  # a registry check (SQL), maybe a model load: keep it off the event loop
                body = await run_in_threadpool(scorer.score, customer_id, name)
        except ScoreError as error:
            return _json(error.status, {"success": False, "code": error.code, "message": error.message})
        return _json(200, body)

    route = Route(SCORES_PREFIX + "{customer_id:str}", get_score, methods=["GET"])
    route.scorer = scorer  # type: ignore[attr-defined]  # for tests and benchmarks
    return [route]
