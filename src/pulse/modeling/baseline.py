"""Baselines that need no features: buy-till-you-die (BG/NBD + Gamma-Gamma) on order history, and RFM.

They are fitted on the same splits as the ML models and reported beside them; they also stand in as the
champion when a task is not eligible for ML (too little history, too few positives or negatives).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pulse.config import Settings
from pulse.db import engine
from pulse.modeling import btyd
from pulse.modeling.tasks import PredictionTask

MIN_BUYERS = 20


def load_orders(settings: Settings) -> pd.DataFrame:
    with engine(settings).connect() as conn:
        orders = pd.read_sql(sa.text("select customer_id, ordered_at, revenue from marts.orders"), conn)
    orders["ordered_at"] = pd.to_datetime(orders["ordered_at"], utc=True)
    return orders


class BtydModel:
    """BG/NBD for purchase counts, Gamma-Gamma for spend, fitted on orders before `as_of` (days)."""

    needs_order_history = True
    algorithm = "bg_nbd"

    def __init__(self, task: PredictionTask) -> None:
        self.target = task.target
        self.horizon_days = task.horizon_days

    def fit(self, orders: pd.DataFrame, as_of: datetime) -> BtydModel:
        summary = btyd.rfm_summary(orders[orders["ordered_at"] < as_of], observation_end=as_of)
        if len(summary) < MIN_BUYERS:
            raise ValueError(f"{len(summary)} buyers before {as_of:%Y-%m-%d}; BG/NBD needs {MIN_BUYERS}")
        self.bgnbd = btyd.BetaGeoModel().fit(summary["frequency"], summary["recency"], summary["T"])
        repeat = summary[summary["frequency"] > 0]
        self.gamma_gamma = None
        if self.target == "revenue" and len(repeat) >= MIN_BUYERS:
            self.gamma_gamma = btyd.GammaGammaModel().fit(repeat["frequency"], repeat["monetary_value"])
        self.mean_order_value = float(orders.loc[orders["ordered_at"] < as_of, "revenue"].mean())
        return self

    def predict(self, customers: pd.Series, orders: pd.DataFrame, as_of: datetime) -> np.ndarray:
        """Score for each customer as of `as_of`; customers without orders get the lowest score."""
        summary = btyd.rfm_summary(orders[orders["ordered_at"] < as_of], observation_end=as_of)
        summary = summary.reindex(pd.Index(customers, name="customer_id"))
        known = summary["frequency"].notna().to_numpy()
        s = summary[known]
        h = self.horizon_days
        result = np.zeros(len(summary))
        if self.target == "revenue":
            purchases = self.bgnbd.predict_purchases(h, s["frequency"], s["recency"], s["T"])
            spend = (
                self.gamma_gamma.expected_spend(s["frequency"], s["monetary_value"])
                if self.gamma_gamma is not None
                else self.mean_order_value
            )
            result[known] = np.asarray(purchases) * np.asarray(spend)
        else:
            buy = np.asarray(self.bgnbd.prob_purchase(h, s["frequency"], s["recency"], s["T"]))
            result[known] = buy if self.target == "any_order" else 1 - buy
            if self.target == "no_order":
                result[~known] = 1.0  # never bought: certainly no repeat order expected
        return result


class RfmModel:
    """The last resort: rank by the RFM quintiles every snapshot carries. No fitting needed."""

    needs_order_history = False
    algorithm = "rfm"

    def __init__(self, task: PredictionTask) -> None:
        self.target = task.target

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        rfm = sum(frame.get(c, 0) for c in ("rfm_recency_score", "rfm_frequency_score", "rfm_monetary_score"))
        score = np.asarray(rfm, dtype=float) / 15.0
        return 1 - score if self.target == "no_order" else score
