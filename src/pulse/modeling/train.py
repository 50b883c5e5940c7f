"""Train the purchase-propensity model on a time split and record it in the registry.

Label: the customer orders in the `label_days` after a snapshot. The holdout snapshot sits `label_days`
before the end of the data (its labels are the last `label_days` days); training snapshots are daily and
end early enough that their label windows close before the holdout snapshot, so no label leaks across the
split. Features come from Feast's point-in-time `get_historical_features`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import Pipeline

from pulse.config import Settings, get_settings
from pulse.db import engine
from pulse.features.snapshots import snapshot_bounds
from pulse.features.store import training_frame
from pulse.modeling.registry import ModelRun, save_run

MODEL_NAME = "purchase_propensity"
FEATURE_SERVICE = "purchase_propensity_v1"
TRAIN_SNAPSHOTS = 28  # daily snapshots before the holdout (more rows; neighbours are correlated)
MIN_HISTORY_DAYS = 14  # a snapshot needs this much history behind it to be worth training on
MIN_CLASS_ROWS = 20


class NotEnoughDataError(RuntimeError):
    """Too little data (or too few positives/negatives) to train a meaningful model."""


@dataclass
class SplitPlan:
    train_snapshots: list[datetime]
    holdout_at: datetime
    data_end: datetime


def plan_split(first_snapshot: datetime, last_snapshot: datetime, label_days: int) -> SplitPlan:
    """Holdout = last snapshot - label_days; training snapshots are the days up to holdout - label_days."""
    holdout_at = last_snapshot - timedelta(days=label_days)
    latest_train = holdout_at - timedelta(days=label_days)
    earliest = first_snapshot + timedelta(days=MIN_HISTORY_DAYS)
    snapshots = [latest_train - timedelta(days=k) for k in range(TRAIN_SNAPSHOTS)]
    snapshots = sorted(s for s in snapshots if s >= earliest)
    if not snapshots:
        span = (last_snapshot - first_snapshot).days
        raise NotEnoughDataError(
            f"the data spans {span} days; a time split with {label_days}-day labels needs at least "
            f"{MIN_HISTORY_DAYS + 2 * label_days} days"
        )
    return SplitPlan(snapshots, holdout_at, last_snapshot)


def labelled_entities(snapshots: list[datetime], label_days: int, settings: Settings) -> pd.DataFrame:
    """(customer_id, event_timestamp, label) for every customer snapshot at the given times."""
    query = sa.text(
        """
        select f.customer_id, f.event_timestamp,
               exists (
                   select 1 from marts.orders o
                   where o.customer_id = f.customer_id
                     and o.ordered_at >= f.event_timestamp
                     and o.ordered_at < f.event_timestamp + make_interval(days => :label_days)
               )::int as label
        from marts.customer_features f
        where f.event_timestamp = any(:snapshots)
        order by f.event_timestamp, f.customer_id
        """
    )
    with engine(settings).connect() as conn:
        frame = pd.read_sql(query, conn, params={"snapshots": snapshots, "label_days": label_days})
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


def make_pipeline() -> Pipeline:
    # Gradient boosting handles the skewed counts and missing values without scaling or imputation.
    return Pipeline(
        [("model", HistGradientBoostingClassifier(learning_rate=0.05, max_iter=300, random_state=0))]
    )


def _check_classes(labels: pd.Series, what: str) -> None:
    positives, negatives = int(labels.sum()), int((1 - labels).sum())
    if min(positives, negatives) < MIN_CLASS_ROWS:
        raise NotEnoughDataError(
            f"{what} has {positives} positives and {negatives} negatives; need at least {MIN_CLASS_ROWS} of each"
        )


@dataclass
class TrainResult:
    run: ModelRun
    metrics: dict[str, float]


def train(
    settings: Settings | None = None, truth_path: Path | None = None, label_days: int | None = None
) -> TrainResult:
    """Fit, evaluate on the holdout snapshot, and register the model as champion."""
    settings = settings or get_settings()
    label_days = label_days or settings.label_days
    plan = plan_split(*snapshot_bounds(settings), label_days)

    train_entities = labelled_entities(plan.train_snapshots, label_days, settings)
    holdout_entities = labelled_entities([plan.holdout_at], label_days, settings)
    _check_classes(train_entities["label"], "the training set")
    _check_classes(holdout_entities["label"], "the holdout set")

    # Feast returns rows in no fixed order; sort so the same data always gives the same model.
    order = ["event_timestamp", "customer_id"]
    train_frame = training_frame(train_entities, FEATURE_SERVICE, settings).sort_values(
        order, ignore_index=True
    )
    holdout_frame = training_frame(holdout_entities, FEATURE_SERVICE, settings).sort_values(
        order, ignore_index=True
    )
    features = [c for c in train_frame.columns if c not in ("customer_id", "event_timestamp", "label")]

    pipeline = make_pipeline().fit(feature_matrix(train_frame, features), train_frame["label"])
    scores = pipeline.predict_proba(feature_matrix(holdout_frame, features))[:, 1]
    labels = holdout_frame["label"].to_numpy()
    metrics = {
        "auc": roc_auc_score(labels, scores),
        "pr_auc": average_precision_score(labels, scores),
        "positive_rate": float(labels.mean()),
    }
    if truth_path is not None:
        metrics.update(truth_metrics(holdout_frame[["customer_id", "label"]], truth_path, plan.holdout_at))

    run = ModelRun(
        run_id=f"{MODEL_NAME}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
        model_name=MODEL_NAME,
        algorithm=type(pipeline[-1]).__name__,
        feature_service=FEATURE_SERVICE,
        features=features,
        trained_at=datetime.now(UTC),
        train_cutoff=max(plan.train_snapshots) + timedelta(days=label_days),
        holdout_at=plan.holdout_at,
        label_days=label_days,
        n_train=len(train_frame),
        n_holdout=len(holdout_frame),
    )
    save_run(run, pipeline, metrics, settings)
    return TrainResult(run, metrics)


def truth_metrics(holdout: pd.DataFrame, truth_path: Path, holdout_at: datetime) -> dict[str, float]:
    """AUC of the simulator's true probabilities on the same holdout customers and labels."""
    truth = pd.read_csv(truth_path)
    window_start = pd.to_datetime(truth["window_start"].iloc[0], utc=True)
    if window_start != pd.Timestamp(holdout_at):
        raise ValueError(
            f"the truth file's label window starts {window_start}, the holdout snapshot is {holdout_at}: "
            "simulate with the same --label-days and end date"
        )
    joined = holdout.merge(truth[["customer_id", "true_probability"]], on="customer_id", how="inner")
    return {"true_probability_auc": roc_auc_score(joined["label"], joined["true_probability"])}


def feature_matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The model's input: its features in training order, as floats (missing values stay NaN)."""
    return frame[features].astype(float).to_numpy()
