"""The model registry lives in the warehouse: every run, its metrics and the fitted model itself."""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import joblib
import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import engine
from pulse.modeling.evaluate import MetricRow
from pulse.modeling.signing import sign, verify


@dataclass
class ModelRun:
    run_id: str
    training_id: str
    model_name: str
    algorithm: str
    kind: str
    feature_service: str
    trained_at: datetime
    data_end: datetime
    holdout_at: datetime
    horizon_days: int
    n_train: int
    n_holdout: int
    features: list[str]
    selection_metric: str
    backtest_score: float | None = None
    holdout_score: float | None = None
    status: str = "challenger"
    is_champion: bool = False
    reason: str | None = None
    reference: dict[str, Any] = field(default_factory=dict)


class NoChampionError(LookupError):
    """No trained model to score with: run `pulse train` first."""


_RUN_COLUMNS = [f for f in ModelRun.__dataclass_fields__]


def save_runs(
    runs: list[tuple[ModelRun, Any, dict[str, list[MetricRow]]]], settings: Settings | None = None
) -> None:
    """Record runs (with artefact and per-fold metrics) in one transaction; champion flags move atomically."""
    with engine(settings).begin() as conn:
        for run, _, _ in runs:
            if run.is_champion:
                conn.execute(
                    sa.text(
                        "update ml.model_runs set is_champion = false, status = 'retired' "
                        "where model_name = :m and is_champion"
                    ),
                    {"m": run.model_name},
                )
        for run, model, metrics in runs:
            values = asdict(run)
            values["features"] = json.dumps(run.features)
            values["reference"] = json.dumps(run.reference)
            values["artifact"] = _dump(model) if model is not None else None
            values["artifact_signature"] = (
                sign(run.run_id, run.model_name, values["artifact"], settings or get_settings())
                if model is not None
                else None
            )
            columns = [*_RUN_COLUMNS, "artifact", "artifact_signature"]
            placeholders = ", ".join(
                f"cast(:{c} as jsonb)" if c in ("features", "reference") else f":{c}" for c in columns
            )
            conn.execute(
                sa.text(f"insert into ml.model_runs ({', '.join(columns)}) values ({placeholders})"), values
            )
            rows = [
                {"r": run.run_id, "f": fold, "m": metric, "b": bucket, "v": float(value)}
                for fold, fold_rows in metrics.items()
                for metric, bucket, value in fold_rows
            ]
            if rows:
                conn.execute(
                    sa.text(
                        "insert into ml.model_metrics (run_id, fold, metric, bucket, value) values (:r, :f, :m, :b, :v)"
                    ),
                    rows,
                )


def _dump(model: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def _load(row, settings: Settings | None) -> tuple[ModelRun, Any]:
    """The run and its fitted model; the artefact is unpickled only once its signature checks out."""
    values = {k: row[k] for k in _RUN_COLUMNS}
    for key in ("features", "reference"):
        if isinstance(values[key], str):
            values[key] = json.loads(values[key])
    run = ModelRun(**values)
    if row["artifact"] is None:
        return run, None
    artifact = bytes(row["artifact"])
    verify(run.run_id, run.model_name, artifact, row["artifact_signature"], settings or get_settings())
    return run, joblib.load(io.BytesIO(artifact))


def champion_run(model_name: str, settings: Settings | None = None) -> ModelRun | None:
    """The current champion's registry row, without loading its artefact."""
    with engine(settings).connect() as conn:
        row = (
            conn.execute(
                sa.text(
                    f"select {', '.join(_RUN_COLUMNS)}, null as artifact, null as artifact_signature from ml.model_runs where model_name = :m and is_champion"
                ),
                {"m": model_name},
            )
            .mappings()
            .first()
        )
    return _load(row, settings)[0] if row else None


def load_champion(model_name: str, settings: Settings | None = None) -> tuple[ModelRun, Any]:
    with engine(settings).connect() as conn:
        row = (
            conn.execute(
                sa.text("select * from ml.model_runs where model_name = :m and is_champion"),
                {"m": model_name},
            )
            .mappings()
            .first()
        )
    if row is None:
        raise NoChampionError(f"no trained '{model_name}' model yet: run `pulse train` first")
    return _load(row, settings)


def load_run(run_id: str, settings: Settings | None = None) -> tuple[ModelRun, Any]:
    """Any run's fitted model, by run id (every run keeps its artefact)."""
    with engine(settings).connect() as conn:
        row = (
            conn.execute(sa.text("select * from ml.model_runs where run_id = :r"), {"r": run_id})
            .mappings()
            .first()
        )
    if row is None:
        raise LookupError(f"no model run {run_id!r}")
    return _load(row, settings)


def holdout_metric(run_id: str, metric: str, settings: Settings | None = None) -> float | None:
    """A run's scalar metric on its holdout fold (None when it has none)."""
    with engine(settings).connect() as conn:
        return conn.execute(
            sa.text(
                "select value from ml.model_metrics where run_id = :r and fold = 'holdout' and metric = :m "
                "and bucket = 0"
            ),
            {"r": run_id, "m": metric},
        ).scalar()


def champions(settings: Settings | None = None) -> list[str]:
    with engine(settings).connect() as conn:
        return list(
            conn.execute(
                sa.text("select model_name from ml.model_runs where is_champion order by 1")
            ).scalars()
        )
