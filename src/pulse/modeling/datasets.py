"""Labelled, point-in-time training data: labels from `marts.orders`, features from Feast."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pulse.config import Settings
from pulse.db import engine
from pulse.features.store import training_frame
from pulse.modeling.tasks import PredictionTask

MIN_HISTORY_DAYS = 14  # a snapshot needs this much history behind it to be worth training on
MAX_TRAIN_SNAPSHOTS = 28
MAX_TRAIN_ROWS = 20_000  # per fit, sampled: keeps a 2-core laptop fast; neighbours are correlated anyway
FOLD_STEP_DAYS = 7


class NotEnoughDataError(RuntimeError):
    """Too little history, or too few positives/negatives, to train a meaningful model."""


@dataclass(frozen=True)
class Fold:
    name: str  # 'backtest_1', ..., 'holdout', or 'final' (no evaluation: the production fit)
    cutoff: datetime  # evaluation snapshot; training labels close before it
    train_snapshots: tuple[datetime, ...]


def _days(start: datetime, end: datetime) -> list[datetime]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)] if end >= start else []


def train_snapshots(first: datetime, cutoff: datetime, horizon_days: int) -> tuple[datetime, ...]:
    """Daily snapshots whose label windows close by `cutoff`, with enough history, newest 28."""
    latest = cutoff - timedelta(days=horizon_days)
    earliest = max(first + timedelta(days=MIN_HISTORY_DAYS), latest - timedelta(days=MAX_TRAIN_SNAPSHOTS - 1))
    return tuple(_days(earliest, latest))


def plan_folds(first: datetime, last: datetime, horizon_days: int, backtest_folds: int = 2) -> list[Fold]:
    """Rolling time split: backtest folds a week apart, the holdout (last - horizon), then the final fit."""
    holdout_at = last - timedelta(days=horizon_days)
    folds = []
    for k in range(backtest_folds, 0, -1):
        cutoff = holdout_at - timedelta(days=FOLD_STEP_DAYS * k)
        snaps = train_snapshots(first, cutoff, horizon_days)
        if snaps:
            folds.append(Fold(f"backtest_{backtest_folds - k + 1}", cutoff, snaps))
    holdout_snaps = train_snapshots(first, holdout_at, horizon_days)
    if not holdout_snaps:
        span = (last - first).days
        raise NotEnoughDataError(
            f"the data spans {span} days; a time split with {horizon_days}-day labels needs at least "
            f"{MIN_HISTORY_DAYS + 2 * horizon_days} days"
        )
    folds.append(Fold("holdout", holdout_at, holdout_snaps))
    folds.append(Fold("final", last, train_snapshots(first, last, horizon_days)))
    return folds


def labels(task: PredictionTask, snapshots: list[datetime], settings: Settings) -> pd.DataFrame:
    """(customer_id, event_timestamp, label) for every customer snapshot at `snapshots` in the population."""
    population = "and f.is_buyer = 1" if task.buyers_only else ""
    query = sa.text(
        f"""
        select f.customer_id, f.event_timestamp,
               count(o.order_id) as orders, coalesce(sum(o.revenue), 0)::double precision as revenue
        from marts.customer_features f
        left join marts.orders o
          on o.customer_id = f.customer_id
         and o.ordered_at >= f.event_timestamp
         and o.ordered_at < f.event_timestamp + make_interval(days => :horizon)
        where f.event_timestamp = any(:snapshots) {population}
        group by 1, 2
        order by 2, 1
        """
    )
    with engine(settings).connect() as conn:
        frame = pd.read_sql(query, conn, params={"snapshots": list(snapshots), "horizon": task.horizon_days})
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    target = {
        "any_order": (frame["orders"] > 0).astype(int),
        "no_order": (frame["orders"] == 0).astype(int),
        "revenue": frame["revenue"],
    }[task.target]
    return frame[["customer_id", "event_timestamp"]].assign(label=target)


class FeatureCache:
    """Point-in-time features per (customer, snapshot), fetched from Feast once for all tasks and folds."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._frames: dict[str, pd.DataFrame] = {}

    def get(self, entities: pd.DataFrame, feature_service: str) -> pd.DataFrame:
        keys = ["customer_id", "event_timestamp"]
        cached = self._frames.get(feature_service)
        missing = (
            entities[keys]
            if cached is None
            else entities[keys].merge(cached[keys], how="left", indicator=True)
        )
        if cached is not None:
            missing = missing[missing["_merge"] == "left_only"][keys]
        if len(missing):
            fetched = training_frame(missing.drop_duplicates(), feature_service, self.settings)
            fetched["event_timestamp"] = pd.to_datetime(fetched["event_timestamp"], utc=True)
            cached = fetched if cached is None else pd.concat([cached, fetched], ignore_index=True)
            self._frames[feature_service] = cached
        return entities.merge(cached, on=keys, how="inner").sort_values(keys, ignore_index=True)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("customer_id", "event_timestamp", "label")]


def sample_rows(frame: pd.DataFrame, limit: int = MAX_TRAIN_ROWS, seed: int = 0) -> pd.DataFrame:
    if len(frame) <= limit:
        return frame
    return frame.iloc[np.sort(np.random.default_rng(seed).choice(len(frame), limit, replace=False))]


def check_eligible(task: PredictionTask, label: pd.Series, what: str, min_rows: int = 20) -> None:
    """Refuse to train on data that cannot give a meaningful model; say why."""
    if task.kind == "classification":
        positives, negatives = int(label.sum()), int((1 - label).sum())
        if min(positives, negatives) < min_rows:
            raise NotEnoughDataError(
                f"{what} has {positives} positives and {negatives} negatives; need at least {min_rows} of each"
            )
    elif int((label > 0).sum()) < min_rows:
        raise NotEnoughDataError(
            f"{what} has {int((label > 0).sum())} customers with revenue; need {min_rows}"
        )
