"""Score every customer with the champion model from online features (`pulse score` -> `ml.scores`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import engine
from pulse.features.snapshots import latest_snapshot
from pulse.features.store import online_frame
from pulse.modeling.registry import load_champion
from pulse.modeling.train import MODEL_NAME, feature_matrix


@dataclass
class ScoreResult:
    run_id: str
    as_of: datetime
    n_scored: int


def percentiles(scores: pd.Series) -> pd.Series:
    """1..100, higher score -> higher percentile; ties share the higher percentile."""
    ranks = scores.rank(method="max", pct=True)
    return ranks.map(lambda r: max(1, min(100, math.ceil(r * 100)))).astype(int)


def score(settings: Settings | None = None, model_name: str = MODEL_NAME) -> ScoreResult:
    """Write one score per customer for the latest snapshot; re-running replaces the same rows."""
    settings = settings or get_settings()
    run, pipeline = load_champion(model_name, settings)
    as_of, customers = latest_snapshot(settings)
    features = online_frame(customers, run.feature_service, settings)
    scores = pd.Series(pipeline.predict_proba(feature_matrix(features, run.features))[:, 1])
    frame = pd.DataFrame(
        {
            "customer_id": features["customer_id"],
            "model_name": model_name,
            "run_id": run.run_id,
            "as_of": as_of,
            "score": scores.round(10),
            "percentile": percentiles(scores),
            "scored_at": datetime.now(UTC),
        }
    )
    with engine(settings).begin() as conn:
        conn.execute(
            sa.text("delete from ml.scores where model_name = :m and as_of = :t"),
            {"m": model_name, "t": as_of},
        )
        frame.to_sql(
            "scores", conn, schema="ml", if_exists="append", index=False, method="multi", chunksize=2000
        )
    return ScoreResult(run.run_id, as_of, len(frame))
