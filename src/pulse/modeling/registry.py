"""The model registry lives in the warehouse: runs, metrics and the fitted pipelines themselves."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime

import joblib
import sqlalchemy as sa
from sklearn.pipeline import Pipeline

from pulse.config import Settings
from pulse.db import engine


@dataclass
class ModelRun:
    run_id: str
    model_name: str
    algorithm: str
    feature_service: str
    features: list[str]
    trained_at: datetime
    train_cutoff: datetime
    holdout_at: datetime
    label_days: int
    n_train: int
    n_holdout: int


class NoChampionError(LookupError):
    """No trained model to score with: run `pulse train` first."""


def save_run(
    run: ModelRun, pipeline: Pipeline, metrics: dict[str, float], settings: Settings | None = None
) -> None:
    """Record the run, its metrics and its artefact; the new run becomes the champion."""
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    with engine(settings).begin() as conn:
        conn.execute(
            sa.text("update ml.model_runs set is_champion = false where model_name = :m and is_champion"),
            {"m": run.model_name},
        )
        conn.execute(
            sa.text(
                "insert into ml.model_runs (run_id, model_name, algorithm, feature_service, trained_at, "
                "train_cutoff, holdout_at, label_days, n_train, n_holdout, features, is_champion, artifact) "
                "values (:run_id, :model_name, :algorithm, :feature_service, :trained_at, :train_cutoff, "
                ":holdout_at, :label_days, :n_train, :n_holdout, cast(:features as jsonb), true, :artifact)"
            ),
            {**run.__dict__, "features": json.dumps(run.features), "artifact": buffer.getvalue()},
        )
        conn.execute(
            sa.text(
                "insert into ml.model_metrics (run_id, split, metric, value) values (:r, 'holdout', :k, :v)"
            ),
            [{"r": run.run_id, "k": k, "v": float(v)} for k, v in metrics.items()],
        )


def load_champion(model_name: str, settings: Settings | None = None) -> tuple[ModelRun, Pipeline]:
    with engine(settings).connect() as conn:
        row = (
            conn.execute(
                sa.text(
                    "select * from ml.model_runs where model_name = :m and is_champion "
                    "order by trained_at desc limit 1"
                ),
                {"m": model_name},
            )
            .mappings()
            .first()
        )
    if row is None:
        raise NoChampionError(f"no trained '{model_name}' model yet: run `pulse train` first")
    return _to_run(row), joblib.load(io.BytesIO(bytes(row["artifact"])))


def load_run(run_id: str, settings: Settings | None = None) -> tuple[ModelRun, Pipeline]:
    with engine(settings).connect() as conn:
        row = (
            conn.execute(sa.text("select * from ml.model_runs where run_id = :r"), {"r": run_id})
            .mappings()
            .first()
        )
    if row is None:
        raise LookupError(f"no model run {run_id!r}")
    return _to_run(row), joblib.load(io.BytesIO(bytes(row["artifact"])))


def _to_run(row) -> ModelRun:
    fields = ModelRun.__dataclass_fields__
    values = {k: row[k] for k in fields}
    if isinstance(values["features"], str):
        values["features"] = json.loads(values["features"])
    return ModelRun(**values)
