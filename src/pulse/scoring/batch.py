"""Score every customer with each task's champion (`pulse score` -> `ml.scores`, `ml.score_drift`),
then refresh recommendations (`ml.recommendations`) and segments (`ml.segments`, `ml.segment_profiles`).

Features come from the Feast online store (what real-time scoring reads too); baselines that need order
history read `marts.orders`. Re-running for the same snapshot replaces the same rows, so the tables are
identical for the same inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import engine
from pulse.features.snapshots import latest_snapshot
from pulse.features.store import online_frame
from pulse.locks import marts_lock
from pulse.modeling import candidates as algos
from pulse.modeling.baseline import RfmModel, load_orders
from pulse.modeling.evaluate import psi
from pulse.modeling.recommend import write_recommendations
from pulse.modeling.registry import ModelRun, NoChampionError, champions, load_champion
from pulse.modeling.segments import write_segments

DRIFT_THRESHOLD = 0.2


class ScoringError(RuntimeError):
    """A champion cannot produce usable scores."""


@dataclass
class ScoreResult:
    model_name: str
    run_id: str
    algorithm: str
    as_of: datetime
    n_scored: int
    score_psi: float | None
    drifted: list[str]


def percentiles(scores: pd.Series) -> pd.Series:
    """1..100, higher score -> higher percentile; ties share the higher percentile."""
    ranks = scores.rank(method="max", pct=True)
    return ranks.map(lambda r: max(1, min(100, math.ceil(r * 100)))).astype(int)


class _Inputs:
    """Online features (per feature service) and order history, each read once per scoring run."""

    def __init__(self, customers: list[str], settings: Settings) -> None:
        self.customers, self.settings = customers, settings
        self._features: dict[str, pd.DataFrame] = {}
        self._orders: pd.DataFrame | None = None

    def features(self, service: str) -> pd.DataFrame:
        if service not in self._features:
            self._features[service] = online_frame(self.customers, service, self.settings)
        return self._features[service]

    def orders(self) -> pd.DataFrame:
        if self._orders is None:
            self._orders = load_orders(self.settings)
        return self._orders


def predict(run: ModelRun, model, inputs: _Inputs, as_of: datetime) -> tuple[np.ndarray, pd.DataFrame | None]:
    if getattr(model, "needs_order_history", False):
        return model.predict(pd.Series(inputs.customers), inputs.orders(), as_of), None
    frame = inputs.features(run.feature_service)
    if isinstance(model, RfmModel):
        return model.predict_frame(frame), frame
    return algos.predict(model, frame[run.features], run.kind), frame


def drift(run: ModelRun, scores: np.ndarray, frame: pd.DataFrame | None) -> dict[str, float]:
    """PSI of this run's scores (and the top features) against the model's training-time distribution."""
    result = {}
    if run.reference.get("score"):
        result["score"] = psi(np.asarray(run.reference["score"]), scores)
    if frame is not None:
        for name, values in run.reference.get("features", {}).items():
            if name in frame:
                result[name] = psi(np.asarray(values), frame[name].astype(float).fillna(0).to_numpy())
    return result


def score_model(model_name: str, inputs: _Inputs, as_of: datetime, settings: Settings) -> ScoreResult:
    run, model = load_champion(model_name, settings)
    scores, frame = predict(run, model, inputs, as_of)
    series = pd.Series(scores, dtype=float)
    missing = int(series.isna().sum())
    if missing:
        # A score that is not a number cannot be ranked or acted on: stop before writing any of them.
        raise ScoringError(
            f"{model_name}: champion {run.run_id} ({run.algorithm}) gave no score for {missing} of "
            f"{len(series)} customers (NaN); retrain with `pulse train`, or retire the run"
        )
    rows = pd.DataFrame(
        {
            "customer_id": inputs.customers,
            "model_name": model_name,
            "run_id": run.run_id,
            "as_of": as_of,
            "score": series.round(10),
            "percentile": percentiles(series),
            "scored_at": datetime.now(UTC),
        }
    )
    psis = drift(run, series.to_numpy(), frame)
    with engine(settings).begin() as conn:
        # Upsert, touching only rows whose score changed: the same inputs leave the table identical
        # (scored_at included).
        conn.execute(sa.text("create temporary table new_scores (like ml.scores) on commit drop"))
        rows.to_sql("new_scores", conn, if_exists="append", index=False, method="multi", chunksize=2000)
        params = {"m": model_name, "t": as_of}
        conn.execute(
            sa.text(
                "delete from ml.scores s where s.model_name = :m and s.as_of = :t and not exists "
                "(select 1 from new_scores n where n.customer_id = s.customer_id)"
            ),
            params,
        )
        conn.execute(
            sa.text(
                "insert into ml.scores select * from new_scores on conflict (model_name, as_of, customer_id) do update "
                "set run_id = excluded.run_id, score = excluded.score, percentile = excluded.percentile, "
                "scored_at = excluded.scored_at where (ml.scores.run_id, ml.scores.score, ml.scores.percentile) "
                "is distinct from (excluded.run_id, excluded.score, excluded.percentile)"
            )
        )
        conn.execute(
            sa.text("delete from ml.score_drift where run_id = :r and as_of = :t"),
            {"r": run.run_id, "t": as_of},
        )
        if psis:
            conn.execute(
                sa.text(
                    "insert into ml.score_drift (run_id, as_of, variable, psi, is_drifted) values (:r, :t, :v, :p, :d)"
                ),
                [
                    {"r": run.run_id, "t": as_of, "v": k, "p": float(v), "d": bool(v > DRIFT_THRESHOLD)}
                    for k, v in psis.items()
                ],
            )
    return ScoreResult(
        model_name,
        run.run_id,
        run.algorithm,
        as_of,
        len(rows),
        psis.get("score"),
        sorted(k for k, v in psis.items() if v > DRIFT_THRESHOLD),
    )


def score(settings: Settings | None = None, model_names: list[str] | None = None) -> list[ScoreResult]:
    """Score the latest snapshot's customers with every champion (or the named ones)."""
    settings = settings or get_settings()
    names = model_names or champions(settings)
    if not names:
        raise NoChampionError("no trained models yet: run `pulse train` first")
    with marts_lock("shared", "scoring", settings):
        as_of, customers = latest_snapshot(settings)
        inputs = _Inputs(customers, settings)
        results = [score_model(name, inputs, as_of, settings) for name in names]
        write_recommendations(customers, as_of, settings)
        write_segments(as_of, settings)
    with engine(settings).begin() as conn:
        # The audiences read these next, before autovacuum has looked at them (or on a server run
        # without it). Planned without statistics, the audiences' dbt build took 43 s in one
        # bench/pipeline run and 7 s in the next on the same data. ANALYZE samples a fixed number of
        # rows, so this costs about the same at any size.
        conn.execute(sa.text("analyze ml.scores, ml.recommendations, ml.segments"))
    return results
